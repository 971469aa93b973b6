//! `fixed-rate`: an open-loop, coordinated-omission-safe HTTP/1.1 load
//! generator for benchmarks (latency at a fixed request rate, measured from
//! each request's intended send time). All logic lives in
//! `testkit::fixed_rate`; run with `--help` for the flags.

fn main() -> std::process::ExitCode {
    testkit::fixed_rate::main()
}
