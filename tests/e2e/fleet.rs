//! A fleet sharing one rollout through a real etcd on loopback: three canaryd, each reaching
//! etcd through its own TCP relay (`testkit::Relay`: pass, pause, reset), so one member can
//! be cut off on one machine. Exactly one leader; the split reaches every member within a
//! second; operator calls on a follower are answered 421 with the leader's address (the CLI
//! follows it); `kill -9` of the leader elects another within `lease_ttl` + 3 s with the split
//! unchanged, and SIGTERM hands over in under a second; traffic through the followers alone
//! is judged (a failing canary behind them rolls the fleet back); a partitioned follower
//! keeps its split and converges after the partition (and a compaction during it), and one
//! elected right after its partition continues from the newest split, not its own; a leader
//! paused past its TTL is fenced and follows when it resumes; with etcd down every member
//! keeps its split, nothing advances, a member restarted meanwhile comes back with its split,
//! and leadership resumes with etcd; `check` and `serve` refuse a `[cluster]` whose files
//! cannot be read. Failover and convergence times are printed (see docs/operations.md).

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{Etcd, Relay};

use crate::common::{cli, post, write_token, Canaryd, FakeGateway, Setup, TempDir, Traffic};

const TOKEN: &str = "fleet-token-0123456789abcdef";
/// `[cluster] lease_ttl` in these tests.
const TTL: Duration = Duration::from_secs(2);

/// One member: its daemon and its relay to etcd.
struct Member {
    name: String,
    d: Canaryd,
    relay: Relay,
}

/// etcd, the gateways and three members `a`, `b`, `c` with `rollout` lines (policy, autostart).
struct Fleet {
    etcd: Etcd,
    _stable: FakeGateway,
    canary: FakeGateway,
    dir: TempDir,
    token: PathBuf,
    members: Vec<Member>,
}

impl Fleet {
    fn start(rollout: impl Fn(&TempDir) -> String) -> Option<Fleet> {
        Self::start_with(rollout, "")
    }

    /// [`Fleet::start`] with `tail` (e.g. `[[notify]]`) in every member's config.
    fn start_with(rollout: impl Fn(&TempDir) -> String, tail: &str) -> Option<Fleet> {
        let Some(etcd) = Etcd::start() else {
            testkit::tool_missing("etcd");
            return None;
        };
        let stable = FakeGateway::spawn("stable", &[]);
        let canary = FakeGateway::spawn("canary", &[]);
        let dir = TempDir::new("canaryd-e2e-fleet");
        let token = write_token(dir.path(), TOKEN);
        let rollout = rollout(&dir);
        let members = ["a", "b", "c"]
            .iter()
            .map(|name| {
                let relay = Relay::start(etcd.addr);
                let mut setup = Setup::new(&stable, &canary, 0.0);
                setup.rollout = rollout.clone();
                setup.tail = format!(
                    "[cluster]\nstore = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"/canaryd/fleet\"\nname = \"{name}\"\nlease_ttl = \"{}s\"\n{tail}",
                    relay.url(),
                    TTL.as_secs()
                );
                let d = Canaryd::start_with_token(&setup, &token);
                Member {
                    name: name.to_string(),
                    d,
                    relay,
                }
            })
            .collect();
        Some(Fleet {
            etcd,
            _stable: stable,
            canary,
            dir,
            token,
            members,
        })
    }

    /// Waits until exactly one member says it leads and every live one names it; its index.
    fn leader(&self, within: Duration) -> usize {
        let start = Instant::now();
        loop {
            let roles: Vec<(String, Option<String>)> = self
                .members
                .iter()
                .map(|m| {
                    let s = m.d.status();
                    (
                        s["cluster"]["role"].as_str().unwrap_or("").to_string(),
                        s["cluster"]["leader"].as_str().map(str::to_string),
                    )
                })
                .collect();
            let leaders: Vec<usize> = (0..roles.len())
                .filter(|&i| roles[i].0 == "leader")
                .collect();
            if let [i] = leaders[..] {
                let name = &self.members[i].name;
                if roles.iter().all(|r| r.1.as_deref() == Some(name)) {
                    return i;
                }
            }
            assert!(leaders.len() <= 1, "two leaders at once: {roles:?}");
            assert!(
                start.elapsed() < within,
                "no single leader within {within:?}: {roles:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every member in `who` applies `percent`; how long it took.
    fn converge(&self, who: &[usize], percent: f64, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let applied: Vec<f64> = who
                .iter()
                .map(|&i| percent_of(&self.members[i].d))
                .collect();
            if applied.iter().all(|&p| p == percent) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "members {who:?} apply {applied:?}, not {percent} %, after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The leader sets `percent`, every member applies it, then one follower's relay pauses
    /// until it says it is cut off: (leader, cut-off follower, the other follower).
    fn cut_a_follower_off_at(&self, percent: f64) -> (usize, usize, usize) {
        let l = self.leader(Duration::from_secs(10));
        let fol = others(3, l);
        let (cut, other) = (fol[0], fol[1]);
        assert_eq!(weight(&self.members[l].d, percent).0, 200);
        self.converge(&[0, 1, 2], percent, Duration::from_secs(1));
        self.members[cut].relay.pause();
        self.members[cut]
            .d
            .wait_status("cut off", Duration::from_secs(5), |s| {
                s["cluster"]["connected"] == false
            });
        (l, cut, other)
    }

    fn shared(&self) -> Value {
        serde_json::from_str(&self.etcd.get("/canaryd/fleet/state").expect("shared state"))
            .expect("shared state is JSON")
    }
}

fn percent_of(d: &Canaryd) -> f64 {
    d.status()["canary_percent"].as_f64().unwrap_or(-1.0)
}

fn weight(d: &Canaryd, percent: f64) -> (u16, Value) {
    post(
        d,
        "weight",
        Some(TOKEN),
        json!({"percent": percent, "reason": "fleet test"}),
    )
}

fn kill9(d: &mut Canaryd) {
    d.signal(libc::SIGKILL);
    d.wait_exit(Duration::from_secs(5)).expect("killed");
}

fn others(n: usize, but: usize) -> Vec<usize> {
    (0..n).filter(|&i| i != but).collect()
}

/// A policy that advances every `hold` through 10, 20, … 100 %, judged by nothing.
fn stepping_policy(dir: &TempDir, hold: &str) -> String {
    let steps: String = (1..=10)
        .map(|k| format!("[[steps]]\nweight = {}\nhold = \"{hold}\"\n", k * 10))
        .collect();
    let path = dir.path().join("stepping.toml");
    fs::write(
        &path,
        format!("name = \"stepping\"\ninterval = \"1s\"\n{steps}"),
    )
    .expect("policy");
    format!("policy = \"{}\"\nautostart = true\n", path.display())
}

#[test]
fn one_leader_spreads_the_split_and_a_killed_leader_is_replaced_with_it() {
    // Manual mode: the split is the operator's, through the leader.
    let Some(mut f) = Fleet::start(|_| String::new()) else {
        return;
    };
    let l = f.leader(Duration::from_secs(10));
    let followers = others(3, l);
    let leader_admin = f.members[l].d.admin.to_string();

    // The split reaches every member within a second.
    let (code, body) = weight(&f.members[l].d, 30.0);
    assert_eq!(code, 200, "{body}");
    let took = f.converge(&[0, 1, 2], 30.0, Duration::from_secs(1));
    eprintln!("fleet: split on every member {took:?} after the leader's answer");
    let shared = f.shared();
    assert_eq!(shared["state"]["canary_percent"], 30.0, "{shared}");
    assert_eq!(shared["leader"], f.members[l].name.as_str());

    // A follower answers 421 with the leader's admin address; the CLI follows it.
    let fol = &f.members[followers[0]].d;
    let (code, body) = weight(fol, 40.0);
    assert_eq!(code, 421, "{body}");
    assert_eq!(body["leader_admin"], leader_admin.as_str(), "{body}");
    let (ok, out, err) = cli(fol, &["set-weight", "35"], Some(&f.token));
    assert!(ok, "{out}\n{err}");
    assert!(err.contains("follower"), "{err}");
    f.converge(&[0, 1, 2], 35.0, Duration::from_secs(1));

    // Metrics and the status' members.
    assert_eq!(f.members[l].d.metric("canaryd_cluster_leader"), 1.0);
    assert_eq!(fol.metric("canaryd_cluster_leader"), 0.0);
    assert_eq!(fol.metric("canaryd_cluster_connected"), 1.0);
    fol.wait_metric("canaryd_cluster_members", 3.0);
    let s = fol.wait_status("members on the split", Duration::from_secs(5), |s| {
        s["cluster"]["members"]
            .as_array()
            .is_some_and(|m| m.len() == 3 && m.iter().all(|m| m["applied_percent"] == 35.0))
    });
    assert_eq!(s["cluster"]["role"], "follower", "{s}");
    let (ok, out, _) = cli(fol, &["status"], None);
    assert!(ok && out.contains("is follower; leader"), "{out}");
    // The decision line names the leader.
    let lines = f.members[l].d.decisions();
    let set = lines
        .iter()
        .rev()
        .find(|d| d["action"] == "set_weight")
        .expect("set_weight line");
    assert_eq!(set["leader"], f.members[l].name.as_str(), "{set}");

    // kill -9 of the leader: another within lease_ttl + 3 s, the split unchanged.
    let killed = Instant::now();
    kill9(&mut f.members[l].d);
    let dead = f.members.remove(l);
    let l2 = f.leader(Duration::from_secs(TTL.as_secs() + 3));
    let failover = killed.elapsed();
    eprintln!("fleet: new leader {failover:?} after kill -9 of the leader (lease_ttl {TTL:?})");
    assert!(failover < TTL + Duration::from_secs(3), "{failover:?}");
    for m in &f.members {
        assert_eq!(percent_of(&m.d), 35.0);
    }
    // It acts: the next split goes through it.
    assert_eq!(weight(&f.members[l2].d, 45.0).0, 200);
    f.converge(&[0, 1], 45.0, Duration::from_secs(1));
    drop(dead);

    // SIGTERM resigns: the last member leads in under a second.
    let stopped = Instant::now();
    f.members[l2].d.signal(libc::SIGTERM);
    let last = 1 - l2;
    f.members[last]
        .d
        .wait_status("the last member leads", Duration::from_secs(1), |s| {
            s["cluster"]["role"] == "leader"
        });
    let handover = stopped.elapsed();
    eprintln!("fleet: handover {handover:?} after SIGTERM of the leader");
    assert!(handover < Duration::from_secs(1), "{handover:?}");
    assert_eq!(percent_of(&f.members[last].d), 45.0);
}

#[test]
fn traffic_through_the_followers_alone_is_judged_and_rolls_the_fleet_back() {
    // Every member has the same webhook: each transition reaches it once, from the leader.
    let (hook, got) = crate::common::webhook_receiver();
    let notify = format!("[[notify]]\nurl = \"http://{hook}/hook\"\n");
    let Some(f) = Fleet::start_with(
        |dir| {
            let path = dir.path().join("errors.toml");
            fs::write(
                &path,
                "name = \"errors\"\ninterval = \"1s\"\nmin_requests = 20\n\
             [[steps]]\nweight = 50\nhold = \"10m\"\n\
             [[steps]]\nweight = 100\nhold = \"10m\"\n\
             [[rules]]\nname = \"error-rate\"\nsource = \"local\"\nsignal = \"error_ratio\"\n\
             window = \"10s\"\nfail_when = \"> 0.2\"\non_fail = \"rollback\"\n",
            )
            .expect("policy");
            format!("policy = \"{}\"\nautostart = true\n", path.display())
        },
        &notify,
    ) else {
        return;
    };
    let l = f.leader(Duration::from_secs(10));
    f.converge(&[0, 1, 2], 50.0, Duration::from_secs(5));
    f.canary.set_knobs("error_rate=1.0");
    // Requests reach the followers only; the leader's own proxy serves none.
    let traffic: Vec<Traffic> = others(3, l)
        .into_iter()
        .map(|i| Traffic::start(f.members[i].d.proxy, 1))
        .collect();
    let s = f.members[l]
        .d
        .wait_status("rolled back", Duration::from_secs(30), |s| {
            s["state"] == "rolled_back"
        });
    for t in traffic {
        t.stop();
    }
    assert_eq!(s["canary_percent"], 0.0, "{s}");
    f.converge(&[0, 1, 2], 0.0, Duration::from_secs(1));
    let served: f64 = f.members[l]
        .d
        .metrics()
        .iter()
        .filter(|(k, _)| k.starts_with("canaryd_requests_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(served, 0.0, "the leader served nothing itself");
    let lines = f.members[l].d.decisions();
    let rb = lines
        .iter()
        .find(|d| d["action"] == "rollback")
        .expect("rollback line");
    assert_eq!(rb["failed_rules"], json!(["error-rate"]), "{rb}");
    assert_eq!(rb["leader"], f.members[l].name.as_str());
    testkit::wait_until("the rollback webhook", Duration::from_secs(10), || {
        got.lock()
            .unwrap()
            .iter()
            .any(|b| b["action"] == "rollback")
    });
    std::thread::sleep(Duration::from_millis(500));
    let bodies = got.lock().unwrap().clone();
    for action in ["start", "rollback"] {
        let sent: Vec<&Value> = bodies.iter().filter(|b| b["action"] == action).collect();
        assert_eq!(
            sent.len(),
            1,
            "{action} notified {} times: {bodies:#?}",
            sent.len()
        );
        assert_eq!(sent[0]["leader"], f.members[l].name.as_str());
    }
    // Followers decide nothing: no rollback line of their own.
    for i in others(3, l) {
        assert!(
            !f.members[i]
                .d
                .decisions()
                .iter()
                .any(|d| d["action"] == "rollback"),
            "follower {} wrote a rollback line",
            f.members[i].name
        );
    }
}

#[test]
fn a_partitioned_follower_keeps_its_split_and_converges_after_a_compaction() {
    let Some(f) = Fleet::start(|_| String::new()) else {
        return;
    };
    let (l, cut, other) = f.cut_a_follower_off_at(20.0);
    assert_eq!(f.members[cut].d.metric("canaryd_cluster_connected"), 0.0);
    for p in [40.0, 45.0] {
        assert_eq!(weight(&f.members[l].d, p).0, 200);
        f.converge(&[l, other], p, Duration::from_secs(1));
    }
    let rev = f.etcd.compact();
    eprintln!("fleet: compacted at revision {rev} during the partition");
    // Cut off: its split stays, and it still serves.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(percent_of(&f.members[cut].d), 20.0);
    let mut c = f.members[cut].d.client();
    assert_eq!(c.get("/").expect("served while cut off").status, 200);

    let healed = Instant::now();
    f.members[cut].relay.pass();
    let took = f.converge(&[cut], 45.0, Duration::from_secs(10));
    eprintln!("fleet: partitioned follower converged {took:?} after the partition healed");
    f.members[cut]
        .d
        .wait_status("connected again", Duration::from_secs(5), |s| {
            s["cluster"]["connected"] == true
        });
    let _ = healed;
    // It did not take over meanwhile.
    assert_eq!(f.leader(Duration::from_secs(1)), l);

    // The other follower's path refused (RST) rather than silent: the same, sooner.
    f.members[other].relay.reset();
    f.members[other]
        .d
        .wait_status("refused", Duration::from_secs(5), |s| {
            s["cluster"]["connected"] == false
        });
    assert_eq!(weight(&f.members[l].d, 60.0).0, 200);
    f.converge(&[l, cut], 60.0, Duration::from_secs(1));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(percent_of(&f.members[other].d), 45.0);
    f.members[other].relay.pass();
    let took = f.converge(&[other], 60.0, Duration::from_secs(10));
    eprintln!("fleet: refused follower converged {took:?} after its path came back");
}

#[test]
fn a_leader_paused_past_its_ttl_is_fenced_and_follows() {
    let Some(f) = Fleet::start(|dir| stepping_policy(dir, "2s")) else {
        return;
    };
    let l = f.leader(Duration::from_secs(10));
    let name = f.members[l].name.clone();
    f.members[l].d.signal(libc::SIGSTOP);
    let rest = others(3, l);
    // Another member leads once the paused one's lease expired.
    let start = Instant::now();
    let new = loop {
        let found = rest
            .iter()
            .copied()
            .find(|&i| f.members[i].d.status()["cluster"]["role"] == "leader");
        if let Some(i) = found {
            break i;
        }
        assert!(
            start.elapsed() < TTL + Duration::from_secs(3),
            "no new leader"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_secs(1));
    f.members[l].d.signal(libc::SIGCONT);
    // Resumed: it follows the new leader and writes nothing.
    f.members[l]
        .d
        .wait_status("follows", Duration::from_secs(5), |s| {
            s["cluster"]["role"] == "follower"
                && s["cluster"]["leader"] == f.members[new].name.as_str()
        });
    let watch_from = Instant::now();
    while watch_from.elapsed() < Duration::from_secs(3) {
        let shared = f.shared();
        assert_ne!(
            shared["leader"],
            name.as_str(),
            "the deposed leader wrote: {shared}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = f.members[l].d.log();
    let (_, after) = log
        .split_once("not the acting leader any more")
        .unwrap_or_else(|| panic!("the resumed leader did not step down:\n{log}"));
    assert!(
        !after.contains("rollout decision"),
        "the deposed leader decided after resuming:\n{log}"
    );
    // The fleet's split is the new leader's, on every member.
    let p = percent_of(&f.members[new].d);
    f.converge(&[0, 1, 2], p, Duration::from_secs(3));
}

#[test]
fn with_etcd_down_every_member_keeps_its_split_and_leadership_resumes() {
    let Some(mut f) = Fleet::start(|dir| stepping_policy(dir, "3s")) else {
        return;
    };
    let l = f.leader(Duration::from_secs(10));
    f.members[l]
        .d
        .wait_status("progressing", Duration::from_secs(10), |s| {
            s["state"] == "progressing"
        });
    f.etcd.stop();
    for m in &f.members {
        m.d.wait_status("disconnected", Duration::from_secs(5), |s| {
            s["cluster"]["connected"] == false && s["cluster"]["role"] == "follower"
        });
    }
    let held: Vec<f64> = f.members.iter().map(|m| percent_of(&m.d)).collect();
    // Nothing advances (holds are 3 s) and nobody drifts.
    std::thread::sleep(Duration::from_secs(4));
    let now: Vec<f64> = f.members.iter().map(|m| percent_of(&m.d)).collect();
    assert_eq!(held, now, "a split moved with etcd down");
    // A member restarted while etcd is down comes back with its split.
    let i = others(3, l)[0];
    f.members[i].d.kill9_and_restart();
    assert_eq!(percent_of(&f.members[i].d), held[i]);

    f.etcd.resume();
    let l2 = f.leader(TTL + Duration::from_secs(3) + Duration::from_secs(5));
    // The rollout goes on from where it was.
    let start = held[l2];
    f.members[l2]
        .d
        .wait_status("advancing again", Duration::from_secs(15), |s| {
            s["canary_percent"].as_f64().is_some_and(|p| p > start)
        });
    let _ = &f.dir;
}

#[test]
fn check_and_serve_refuse_a_fleet_config_they_cannot_use() {
    let dir = TempDir::new("canaryd-e2e-fleet-bad");
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let mut setup = Setup::new(&stable, &canary, 0.0);
    let missing = dir.path().join("no-such-ca.pem");
    setup.tail = format!(
        "[cluster]\nstore = \"etcd\"\nendpoints = [\"https://127.0.0.1:2379\"]\nprefix = \"/canaryd/x\"\nca_file = \"{}\"\n",
        missing.display()
    );
    let config = dir.path().join("canaryd.toml");
    let text = setup.render(testkit::free_addr(), testkit::free_addr(), dir.path());
    fs::write(&config, text).expect("write config");
    for verb in ["check", "serve"] {
        let out = std::process::Command::new(crate::common::binary())
            .args([verb, "--config"])
            .arg(&config)
            .output()
            .expect("canaryd runs");
        assert!(!out.status.success(), "{verb} accepted it");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "cluster.ca_file: cannot read {}",
                missing.display()
            )),
            "{verb}: {err}"
        );
    }
}

#[test]
fn a_member_elected_right_after_a_partition_continues_from_the_newest_split() {
    let Some(mut f) = Fleet::start(|_| String::new()) else {
        return;
    };
    let (l, cut, other) = f.cut_a_follower_off_at(50.0);
    // Back towards stable while it cannot see it; then every other member dies.
    assert_eq!(weight(&f.members[l].d, 10.0).0, 200);
    f.converge(&[l, other], 10.0, Duration::from_secs(1));
    kill9(&mut f.members[l].d);
    kill9(&mut f.members[other].d);
    assert_eq!(percent_of(&f.members[cut].d), 50.0);
    // Healed, it is the only member left and leads: from the 10 % in etcd, never its 50 %.
    f.members[cut].relay.pass();
    let c = &f.members[cut].d;
    c.wait_status("leads", TTL + Duration::from_secs(5), |s| {
        s["cluster"]["role"] == "leader"
    });
    assert_eq!(percent_of(c), 10.0);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_eq!(f.shared()["state"]["canary_percent"], 10.0);
        assert_eq!(percent_of(c), 10.0);
        std::thread::sleep(Duration::from_millis(100));
    }
}
