//! A tiny blocking W3C WebDriver client, for tests that drive a real headless Chromium
//! (Debian's `chromium` + `chromium-driver`) through `/usr/bin/chromedriver`.
//!
//! [`Browser::launch`] starts chromedriver on a free port, opens a session with a fresh
//! profile in a temporary directory, and on drop deletes the session and kills chromedriver's
//! process group (so no browser is left behind). Requests go over [`crate::Client`]; every
//! WebDriver error comes back as an `io::Error` naming the command, the W3C error code and
//! chromedriver's message. Reads go through short scripts (`document.querySelector`) so a test
//! polling a page whose DOM is being replaced never trips over stale element handles.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{free_addr, wait_for_port, ChildGuard, Client, TempDir};

/// Where Debian puts the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The W3C key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Flags for running as root in a container on a closed network: without the
/// background-networking ones Chromium keeps trying to reach Google and misbehaves.
const ARGS: [&str; 10] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// Whether Chromium and chromedriver are installed (`scripts/test` installs both).
pub fn available() -> bool {
    Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file()
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// A chromedriver process with one browser session.
pub struct Browser {
    session: String,
    client: Client,
    driver: ChildGuard,
    dir: TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("session", &self.session)
            .field("driver", &self.client.addr())
            .finish_non_exhaustive()
    }
}

/// An element found by [`Browser::find`] (valid until the page replaces it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium with a window of `width` × `height`.
    pub fn launch(width: u32, height: u32) -> io::Result<Browser> {
        let dir = TempDir::new("testkit-chromium");
        let addr: SocketAddr = free_addr();
        let log = File::create(dir.path().join("chromedriver.log"))?;
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={}", addr.port()))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Its own process group, so drop can end the browser processes with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = ChildGuard::new(cmd.spawn().map_err(|e| {
            other(format!(
                "cannot start {CHROMEDRIVER}: {e} (apt-get install chromium-driver)"
            ))
        })?);
        wait_for_port(addr, Duration::from_secs(20));
        let mut client = Client::connect(addr)?;
        client.set_timeout(Duration::from_secs(60))?;
        let profile = dir.path().join("profile");
        std::fs::create_dir_all(&profile)?;
        let mut args: Vec<String> = ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={width},{height}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let mut me = Browser {
            session: String::new(),
            client,
            driver,
            dir,
        };
        let v = me.call("POST", "/session", Some(caps))?;
        me.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| other(format!("new session: no sessionId in {v}")))?
            .to_string();
        Ok(me)
    }

    /// chromedriver's log (for failure messages).
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// One WebDriver command; returns its `value`.
    fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> io::Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers: &[(&str, &str)] = if method == "POST" {
            &[("Content-Type", "application/json; charset=utf-8")]
        } else {
            &[]
        };
        let r = self
            .client
            .request(method, path, headers, body.as_bytes())?;
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| {
            other(format!(
                "{method} {path}: answer is not JSON ({e}): {}",
                r.text()
            ))
        })?;
        if r.status != 200 {
            return Err(other(format!(
                "{method} {path}: {} {}: {}",
                r.status,
                v["value"]["error"].as_str().unwrap_or("?"),
                v["value"]["message"].as_str().unwrap_or("")
            )));
        }
        Ok(v["value"].clone())
    }

    fn session_call(&mut self, method: &str, tail: &str, body: Option<Value>) -> io::Result<Value> {
        let path = format!("/session/{}{tail}", self.session);
        self.call(method, &path, body)
    }

    /// Navigates to `url` and waits for the load.
    pub fn goto(&mut self, url: &str) -> io::Result<()> {
        self.session_call("POST", "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    /// The current URL.
    pub fn url(&mut self) -> io::Result<String> {
        Ok(self
            .session_call("GET", "/url", None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The first element matching a CSS selector.
    pub fn find(&mut self, css: &str) -> io::Result<Element> {
        let v = self.session_call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        v[ELEMENT_KEY]
            .as_str()
            .map(|id| Element(id.to_string()))
            .ok_or_else(|| other(format!("find {css:?}: no element reference in {v}")))
    }

    /// Every element matching a CSS selector.
    pub fn find_all(&mut self, css: &str) -> io::Result<Vec<Element>> {
        let v = self.session_call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str())
                    .map(|id| Element(id.to_string()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// An element's rendered text.
    pub fn element_text(&mut self, e: &Element) -> io::Result<String> {
        let v = self.session_call("GET", &format!("/element/{}/text", e.0), None)?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// An element's attribute (`None` when absent).
    pub fn attribute(&mut self, e: &Element, name: &str) -> io::Result<Option<String>> {
        let v = self.session_call("GET", &format!("/element/{}/attribute/{name}", e.0), None)?;
        Ok(v.as_str().map(str::to_string))
    }

    /// Whether a form control is enabled.
    pub fn is_enabled(&mut self, e: &Element) -> io::Result<bool> {
        let v = self.session_call("GET", &format!("/element/{}/enabled", e.0), None)?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// Clicks an element (scrolled into view first, as a user would).
    pub fn click(&mut self, e: &Element) -> io::Result<()> {
        self.session_call("POST", &format!("/element/{}/click", e.0), Some(json!({})))
            .map(drop)
    }

    /// Empties an input.
    pub fn clear(&mut self, e: &Element) -> io::Result<()> {
        self.session_call("POST", &format!("/element/{}/clear", e.0), Some(json!({})))
            .map(drop)
    }

    /// Types `text` into an element.
    pub fn send_keys(&mut self, e: &Element, text: &str) -> io::Result<()> {
        self.session_call(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its result.
    pub fn execute(&mut self, script: &str, args: Vec<Value>) -> io::Result<Value> {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The text of the first element matching `css`, `None` when there is none. Read by a
    /// script in one step, so it works while the page swaps its DOM.
    pub fn text(&mut self, css: &str) -> io::Result<Option<String>> {
        let v = self.execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![json!(css)],
        )?;
        Ok(v.as_str().map(str::to_string))
    }

    /// An attribute of the first element matching `css` (`None` when either is missing).
    pub fn attr(&mut self, css: &str, name: &str) -> io::Result<Option<String>> {
        let v = self.execute(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;",
            vec![json!(css), json!(name)],
        )?;
        Ok(v.as_str().map(str::to_string))
    }

    /// How many elements match `css`.
    pub fn count(&mut self, css: &str) -> io::Result<usize> {
        let v = self.execute(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(css)],
        )?;
        Ok(v.as_u64().unwrap_or(0) as usize)
    }

    /// Polls `f` until it returns `Some`; panics after `timeout` with `what`, the last error
    /// and the driver's log tail.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&mut Browser) -> io::Result<Option<T>>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            match f(self) {
                Ok(Some(t)) => return t,
                Ok(None) => {}
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                let log = self.driver_log();
                let lines: Vec<&str> = log.lines().collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what} (last error: {last:?}); chromedriver log tail:\n{}",
                    lines[lines.len().saturating_sub(20)..].join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Resizes the window.
    pub fn set_window_size(&mut self, width: u32, height: u32) -> io::Result<()> {
        self.session_call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .map(drop)
    }

    /// A PNG of the viewport.
    pub fn screenshot(&mut self) -> io::Result<Vec<u8>> {
        let v = self.session_call("GET", "/screenshot", None)?;
        let b64 = v
            .as_str()
            .ok_or_else(|| other(format!("screenshot: not a string: {v}")))?;
        base64_decode(b64).ok_or_else(|| other("screenshot: invalid base64".into()))
    }

    /// Saves a PNG of the viewport to `path` (parent directories created) and returns it.
    pub fn save_screenshot(&mut self, path: impl Into<PathBuf>) -> io::Result<PathBuf> {
        let path = path.into();
        let png = self.screenshot()?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, png)?;
        Ok(path)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.client.set_timeout(Duration::from_secs(10));
            let path = format!("/session/{}", self.session);
            let _ = self.call("DELETE", &path, None);
        }
        // The driver leads its own process group: end the browsers it started with it.
        let pgid = self.driver.pid() as libc::pid_t;
        // SAFETY: kill(2) on the process group of our own child.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        self.driver.kill();
    }
}

/// Standard base64 (with or without padding; whitespace ignored).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let data = clean
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(&clean[..0], |i| &clean[..=i]);
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for chunk in data.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= sextet(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVs\nbG8h").unwrap(), b"hello!");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
        assert!(base64_decode("a$==").is_none());
        assert!(base64_decode("a").is_none());
    }
}
