//! Named upstreams and the routes that use them: names, references and hosts checked, each
//! mistake located.

use crate::Config;

const BASE: &str = "[backends.stable]\nservers = [\"127.0.0.1:1\"]\n[backends.canary]\nservers = [\"127.0.0.1:2\"]\n";

fn load(src: &str) -> Result<Config, String> {
    Config::from_source("canaryd.toml", &format!("{BASE}{src}"), false).map_err(|e| e.to_string())
}

#[test]
fn upstreams_and_routes_load() {
    let cfg = load(
        "[upstreams.api]\nservers = [{ addr = \"127.0.0.1:3\", weight = 2 }, \"127.0.0.1:4\"]\nkeepalive = 16\nmax_fails = 3\n\
         health = { path = \"/healthz\" }\n\
         [[proxy.routes]]\nprefix = \"/api/\"\nupstream = \"api\"\n\
         [[proxy.routes]]\nhosts = [\"admin.example.com\", \"*.example.org\"]\nupstream = \"api\"\n\
         [[proxy.routes]]\nprefix = \"/api/\"\nhosts = [\"other.example.com\"]\n",
    )
    .unwrap();
    let api = &cfg.upstreams["api"];
    assert_eq!(api.servers[0].weight, 2);
    assert_eq!(api.keepalive, Some(16));
    assert_eq!(cfg.proxy.routes[1].prefix, "/", "prefix defaults to /");
    assert_eq!(cfg.proxy.routes[1].label(), "admin.example.com/");
    assert_eq!(cfg.proxy.routes[2].upstream, None);
}

#[test]
fn every_upstream_mistake_is_located() {
    let e = load(
        "[upstreams.api]\nservers = []\n\
         [upstreams.\"bad name\"]\nservers = [\"127.0.0.1:3\"]\n\
         [[proxy.routes]]\nprefix = \"/api/\"\nupstream = \"apii\"\n\
         [[proxy.routes]]\nprefix = \"/api/\"\nhosts = [\"ok.example.com\", \"bad host:80\", \"*.\"]\n\
         [[proxy.routes]]\nprefix = \"/api/\"\n",
    )
    .unwrap_err();
    for want in [
        "canaryd.toml:6: key `upstreams.api.servers`: expected at least one server",
        "key `upstreams.bad name`: expected a name of letters",
        "canaryd.toml:11: key `proxy.routes[0].upstream`: expected one of the [upstreams] names (\"api\", \"bad name\"), found \"apii\"",
        "key `proxy.routes[1].hosts[1]`: expected a host name",
        "key `proxy.routes[1].hosts[2]`",
        "key `proxy.routes[2].prefix`: expected each prefix once per host, \"/api/\" is repeated",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    let none = load("[[proxy.routes]]\nupstream = \"api\"\n").unwrap_err();
    assert!(none.contains("there is none"), "{none}");
}
