//! Child processes in tests: a guard that never leaves a process behind, and
//! the lookup of workspace binaries built next to the test executable.

use std::path::PathBuf;
use std::process::Child;

/// Owns a child process; on drop it is killed with SIGKILL and reaped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Wraps an already spawned child.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(child)
    }

    /// The child's process id (still answered after it was killed).
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL and wait; harmless if the child already exited.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// The wrapped child, e.g. to send it another signal or take a pipe.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Path of the workspace binary `name` built next to the running test.
///
/// Test executables live in `target/<profile>/deps/`, binaries in
/// `target/<profile>/`, so this looks in the parent of the current
/// executable's directory (and, for callers that are themselves binaries in
/// `target/<profile>/`, in that directory too).
///
/// # Panics
/// When the binary is not there.
pub fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot find the current executable: {e}"));
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let dir = exe
        .parent()
        .unwrap_or_else(|| panic!("executable {} has no parent dir", exe.display()));
    let expected = match dir.parent() {
        Some(profile_dir) => profile_dir.join(&file),
        None => dir.join(&file),
    };
    if expected.is_file() {
        return expected;
    }
    let beside = dir.join(&file);
    if beside.is_file() {
        return beside;
    }
    panic!(
        "binary {name} not found at {}: run `cargo build --workspace --bins` first",
        expected.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn guard_kills_on_drop() {
        let child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as libc::pid_t;
        drop(ChildGuard::new(child));
        // The child was reaped, so the pid no longer names our child.
        let rc = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        assert_eq!(rc, -1, "child should already be reaped");
    }

    #[test]
    #[should_panic(expected = "run `cargo build --workspace --bins` first")]
    fn missing_binary_panics_clearly() {
        sibling_binary("no-such-binary-for-testkit");
    }
}
