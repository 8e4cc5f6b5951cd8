//! A small WebDriver client for the report tests: HTTP/1.1 with JSON bodies over a
//! `TcpStream` to a chromedriver on a loopback port, driving Debian's headless chromium.
//! Only what the tests use: a session, navigation, scripts, typing, browser logs and
//! screenshots.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The W3C key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The browser and its driver, from Debian's `chromium` and `chromium-driver` packages.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join(n))
                    .find(|p| p.is_file())
            })
        })
    };
    Some((
        find(&["chromium", "chromium-browser"])?,
        find(&["chromedriver"])?,
    ))
}

/// One read, again when a signal interrupted it (EINTR: a test process's other tests
/// start and stop children, and a signal handler installed without `SA_RESTART`
/// interrupts a blocking read; `read` does not retry by itself as `read_to_end` does).
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// A WebDriver session in a headless chromium; the session and the driver end on drop.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: PathBuf,
}

/// Starts chromium under chromedriver, or says why not: without them the test skips
/// (with a message), and under `CI=true` it fails, as a missing corpus does.
pub fn browser_or_skip() -> Option<Browser> {
    let Some((chromium, chromedriver)) = tools() else {
        let why = "chromium and chromedriver are not installed (scripts/setup installs \
                   Debian's chromium and chromium-driver)";
        assert!(
            !vigil_testdata::in_ci(),
            "{why}; CI=true, so this fails instead of skipping"
        );
        vigil_testdata::skip(why);
        return None;
    };
    Some(Browser::start(&chromium, &chromedriver).expect("chromium starts under chromedriver"))
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path) -> Result<Browser, String> {
        // A free loopback port for the driver.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", chromedriver.display()))?;
        let profile = std::env::temp_dir().join(format!(
            "vigil-report-chromium-{}-{port}",
            std::process::id()
        ));
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match b.request("GET", "/status", None) {
                Ok(v) if v["ready"] == true => break,
                _ if Instant::now() > deadline => return Err("chromedriver never ready".into()),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        // The console tests' server has a certificate from its own CA, which this
        // throwaway profile does not know (the report tests open files).
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run",
                         "--disable-extensions", "--disable-background-networking",
                         "--window-size=1400,1800",
                         format!("--user-data-dir={}", b.profile.display())]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let v = b.request("POST", "/session", Some(&caps))?;
        b.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session: {v}"))?
            .to_string();
        Ok(b)
    }

    /// One WebDriver command; its `value`, or the error it answered.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: \
             application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .map_err(|e| e.to_string())?;
        // The driver keeps the connection open whatever the request says: the answer ends
        // where its Content-Length (or its last chunk) says.
        let mut raw = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let split = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = read_some(&mut s, &mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed before the HTTP headers ended".into());
            }
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let mut content = raw[split + 4..].to_vec();
        let length = head.lines().find_map(|l| {
            l.strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        });
        let chunked = head.contains("transfer-encoding: chunked");
        loop {
            let done = match length {
                Some(n) => content.len() >= n,
                None if chunked => content.ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if done {
                break;
            }
            let n = read_some(&mut s, &mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            content.extend_from_slice(&buf[..n]);
        }
        if chunked {
            content = dechunk(&content)?;
        }
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or("no HTTP status")?;
        let v: Value = serde_json::from_slice(&content)
            .map_err(|e| format!("{method} {path}: answer is not JSON: {e}"))?;
        if status != 200 {
            return Err(format!("{method} {path}: HTTP {status}: {}", v["value"]));
        }
        Ok(v["value"].clone())
    }

    fn command(&self, method: &str, what: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}{what}", self.session);
        self.request(method, &path, body)
            .unwrap_or_else(|e| panic!("webdriver: {e}"))
    }

    /// Opens a URL and waits for the page to load.
    pub fn open(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Runs a script (a function body: `return ...`) in the page; its result.
    pub fn run(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": []})),
        )
    }

    /// Whether the element `css` selects is there and displayed.
    #[allow(dead_code)]
    pub fn visible(&self, css: &str) -> bool {
        self.run(&format!(
            "const e = document.querySelector({css:?}); \
             return !!e && getComputedStyle(e).display !== 'none';"
        )) == json!(true)
    }

    /// Finds and clicks the element `css` selects in one script (so a click never lands
    /// on an element the page has just drawn again); whether there was one.
    #[allow(dead_code)]
    pub fn click_now(&self, css: &str) -> bool {
        self.run(&format!(
            "const e = document.querySelector({css:?}); if (e) e.click(); return !!e;"
        )) == json!(true)
    }

    /// The text of the element `css` selects (`null` when there is none).
    #[allow(dead_code)]
    pub fn text_of(&self, css: &str) -> Value {
        self.run(&format!(
            "const e = document.querySelector({css:?}); return e ? e.textContent : null;"
        ))
    }

    /// The element `css` selects.
    fn element(&self, css: &str) -> String {
        let el = self.command(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        el[ELEMENT].as_str().expect("element reference").to_string()
    }

    /// Clicks the element `css` selects.
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.command("POST", &format!("/element/{id}/click"), Some(&json!({})));
    }

    /// Types `text` into the element `css` selects, key by key, as a user would.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({ "text": text })),
        );
    }

    /// The browser's console messages since the last call (`level`, `message`).
    pub fn console(&self) -> Vec<Value> {
        match self.command("POST", "/se/log", Some(&json!({"type": "browser"}))) {
            Value::Array(v) => v,
            v => panic!("browser log is not a list: {v}"),
        }
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self.command("GET", "/screenshot", None);
        base64_decode(v.as_str().expect("base64 PNG")).expect("valid base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.request("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The body of a chunked HTTP answer.
fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size: {e}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).ok_or("chunk cut short")?);
        b = b.get(size + 2..).ok_or("chunk cut short")?;
    }
}

/// Standard base64 (with or without padding).
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let val = |c: u8| -> Result<u32, String> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("not base64: {:?}", char::from(c))),
        }
        .into())
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let got = chunk.len().saturating_sub(1);
        out.extend_from_slice(&n.to_be_bytes()[1..=got]);
    }
    Ok(out)
}

#[test]
fn base64_decodes_known_vectors() {
    for (o, i) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64_decode(i).expect("decodes"), o.as_bytes());
    }
    assert!(base64_decode("Zm9v!").is_err());
}
