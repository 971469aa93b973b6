//! The `fake-gateway` command line, parsed by hand (no clap in test
//! tooling): `--flag value` or `--flag=value`.

use std::net::SocketAddr;

use super::knobs::KnobValues;

pub const USAGE: &str = "\
usage: fake-gateway [options]

  --listen ADDR           address to listen on (default 127.0.0.1:0)
  --name NAME             name answered by / and sent in x-served-by (default gateway)
  --error-rate F          fraction 0..1 of normal requests answered 500
  --latency-ms N          delay added to each normal request
  --leak-mb-per-min F     memory leaked per minute, in MiB
  --auth-fail-rate F      fraction 0..1 of /auth... requests answered 401
  --unhealthy             /health answers 503
  -h, --help              this text

Prints `listening on ADDR` on stdout once listening.";

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub name: String,
    pub knobs: KnobValues,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Config),
    Help,
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        name: "gateway".to_owned(),
        knobs: KnobValues::default(),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if arg.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--unhealthy" => {
                if inline.is_some() {
                    return Err("--unhealthy takes no value".to_owned());
                }
                config.knobs.healthy = false;
                continue;
            }
            _ => {}
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                let v = value()?;
                config.listen = v
                    .parse()
                    .map_err(|_| format!("--listen needs IP:PORT, got {v:?}"))?;
            }
            "--name" => {
                let v = value()?;
                if v.is_empty() || http::HeaderValue::from_str(&v).is_err() {
                    return Err(format!(
                        "--name must be a non-empty header-safe string, got {v:?}"
                    ));
                }
                config.name = v;
            }
            "--error-rate" => config.knobs.set("error_rate", &value()?)?,
            "--latency-ms" => config.knobs.set("latency_ms", &value()?)?,
            "--leak-mb-per-min" => config.knobs.set("leak_mb_per_min", &value()?)?,
            "--auth-fail-rate" => config.knobs.set("auth_fail_rate", &value()?)?,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(Command::Run(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Command::Run(c) => Ok(c),
            Command::Help => Err("help".to_owned()),
        }
    }

    #[test]
    fn defaults() {
        let c = run(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:0");
        assert_eq!(c.name, "gateway");
        assert_eq!(c.knobs, KnobValues::default());
    }

    #[test]
    fn all_flags_both_forms() {
        let c = run(&[
            "--listen",
            "127.0.0.1:8080",
            "--name=canary",
            "--error-rate",
            "0.25",
            "--latency-ms=15",
            "--leak-mb-per-min",
            "30",
            "--auth-fail-rate=1",
            "--unhealthy",
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.name, "canary");
        assert_eq!(c.knobs.error_rate, 0.25);
        assert_eq!(c.knobs.latency_ms, 15);
        assert_eq!(c.knobs.leak_mb_per_min, 30.0);
        assert_eq!(c.knobs.auth_fail_rate, 1.0);
        assert!(!c.knobs.healthy);
    }

    #[test]
    fn errors_and_help() {
        assert!(run(&["--error-rate", "1.5"]).is_err());
        assert!(run(&["--latency-ms"]).is_err());
        assert!(run(&["--listen", "nope"]).is_err());
        assert!(run(&["--name", "bad\nname"]).is_err());
        assert!(run(&["--bogus"]).is_err());
        assert_eq!(run(&["--help"]), Err("help".to_owned()));
    }
}
