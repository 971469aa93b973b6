//! `fake-gateway`: a fake upstream HTTP server with run-time knobs (errors,
//! latency, memory leak, auth failures, health) for canaryd's end-to-end
//! tests and demo. All logic lives in `testkit::fake_gateway`; run with
//! `--help` for the flags.

fn main() -> std::process::ExitCode {
    testkit::fake_gateway::main()
}
