//! The OCSF lines of single-event findings, written from per-rule templates.
//!
//! Most of a Detection Finding depends on its rule alone (title, analytic, ATT&CK tags,
//! severity, captions, product); what depends on the event is a handful of values: its
//! time, its file and record, its Windows channel and EventID, and the event itself. So
//! the line of a rule's finding is made once with stand-ins for those values
//! ([`crate::detection::write_ocsf_text`], the one way a finding is written), cut at the
//! stand-ins, and from then on written by copying the pieces and the values between them.
//! A template is checked when it is made: written with test values, it must give the very
//! bytes the finding gives with them; if not (a rule whose text holds a stand-in), that
//! rule's findings are written the slow way.

use crate::detection::{write_event, write_ocsf_text, EventMeta};
use std::collections::HashMap;
use std::path::Path;
use vigil_sigma::RuleMeta;

/// Appends `s` as the contents of a JSON string, escaped as `serde_json` escapes: `"`,
/// `\` and control characters (short forms where JSON has them, else `\u00XX`).
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(&s[run..i]);
        run = i + 1;
        if short != 0 {
            out.extend_from_slice(&[b'\\', short]);
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
    out.extend_from_slice(&s[run..]);
}

/// Appends an integer in decimal.
fn decimal_into(out: &mut Vec<u8>, negative: bool, mut m: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

/// What differs from one finding of a rule to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hole {
    /// The event time (ms since the epoch).
    Time,
    /// The input file's path, escaped.
    Path,
    /// The record number.
    Record,
    /// The Windows channel, escaped.
    Channel,
    /// The Windows EventID, escaped.
    Code,
    /// The event, as its JSON text.
    Data,
}

// The stand-ins, chosen so that no rule text holds them (and checked: see the module docs).
const PATH: &str = "\u{1}vigil-path\u{1}";
const CHANNEL: &str = "\u{1}vigil-channel\u{1}";
const CODE: &str = "\u{1}vigil-code\u{1}";
const RECORD: u64 = 987_654_321_987_654_321;
const TIME: i64 = 1_123_456_789_123_456_789;
/// The event's stand-in is written as it is (not escaped): raw control bytes, which
/// serialized JSON never holds.
const DATA: &[u8] = b"\x01vigil-data\x01";

/// A finding's line cut at its holes.
#[derive(Debug)]
struct Template {
    text: Vec<u8>,
    /// Pieces of `text` (start, end), each followed by a hole (the last by none).
    pieces: Vec<(u32, u32, Option<Hole>)>,
}

/// Which optional parts a finding has: an event time, a channel, an EventID.
fn shape(time: bool, channel: bool, code: bool) -> u8 {
    u8::from(time) | u8::from(channel) << 1 | u8::from(code) << 2
}

impl Template {
    /// The template of `rule`'s findings of this shape; `None` if it does not check out.
    fn build(rule: &RuleMeta, shape: u8, now_ms: i64, scratch: &mut Vec<u8>) -> Option<Self> {
        let (time, channel, code) = (shape & 1 != 0, shape & 2 != 0, shape & 4 != 0);
        let meta = EventMeta {
            path: Path::new(PATH),
            record: RECORD,
            channel: channel.then(|| CHANNEL.to_string()),
            event_code: code.then(|| CODE.to_string()),
        };
        let mut text = Vec::new();
        let time_ms = time.then_some(TIME);
        write_ocsf_text(rule, time_ms, &meta, DATA, now_ms, scratch, &mut text).ok()?;
        let mut stand_ins: Vec<(Vec<u8>, Hole)> = vec![(DATA.to_vec(), Hole::Data)];
        for (s, hole) in [
            (PATH, Hole::Path),
            (CHANNEL, Hole::Channel),
            (CODE, Hole::Code),
        ] {
            let mut e = Vec::new();
            escape_into(&mut e, s.as_bytes());
            stand_ins.push((e, hole));
        }
        stand_ins.push((RECORD.to_string().into_bytes(), Hole::Record));
        stand_ins.push((TIME.to_string().into_bytes(), Hole::Time));
        let mut pieces = Vec::new();
        let (mut start, mut i) = (0, 0);
        while i < text.len() {
            let b = text[i];
            let found = match b {
                b'\\' | b'\x01' | b'0'..=b'9' => {
                    stand_ins.iter().find(|(s, _)| text[i..].starts_with(s))
                }
                _ => None,
            };
            match found {
                Some((s, hole)) => {
                    pieces.push((start as u32, i as u32, Some(*hole)));
                    i += s.len();
                    start = i;
                }
                None => i += 1,
            }
        }
        pieces.push((start as u32, text.len() as u32, None));
        let t = Template { text, pieces };
        t.checks_out(rule, time, channel, code, now_ms, scratch)
            .then_some(t)
    }

    /// Whether the template writes what the finding is, for test values of each hole.
    fn checks_out(
        &self,
        rule: &RuleMeta,
        time: bool,
        channel: bool,
        code: bool,
        now_ms: i64,
        scratch: &mut Vec<u8>,
    ) -> bool {
        let path = Path::new("/t\"e\\s\u{7}t/\u{e9}.jsonl");
        let meta = EventMeta {
            path,
            record: 7,
            channel: channel.then(|| "Ch\"an\nnel".to_string()),
            event_code: code.then(|| "4688".to_string()),
        };
        let time_ms = time.then_some(-1234);
        let data = b"{\"k\":\"v\"}";
        let mut want = Vec::new();
        if write_ocsf_text(rule, time_ms, &meta, data, now_ms, scratch, &mut want).is_err() {
            return false;
        }
        let mut escaped_path = Vec::new();
        escape_into(&mut escaped_path, path.display().to_string().as_bytes());
        let mut got = Vec::new();
        self.write(
            time_ms.unwrap_or(now_ms),
            &escaped_path,
            &meta,
            data,
            &mut got,
        );
        got == want
    }

    fn write(&self, time: i64, path: &[u8], meta: &EventMeta<'_>, data: &[u8], out: &mut Vec<u8>) {
        for &(start, end, hole) in &self.pieces {
            out.extend_from_slice(&self.text[start as usize..end as usize]);
            match hole {
                None => {}
                Some(Hole::Time) => decimal_into(out, time < 0, time.unsigned_abs()),
                Some(Hole::Path) => out.extend_from_slice(path),
                Some(Hole::Record) => decimal_into(out, false, meta.record),
                Some(Hole::Channel) => {
                    escape_into(out, meta.channel.as_deref().unwrap_or("").as_bytes())
                }
                Some(Hole::Code) => {
                    escape_into(out, meta.event_code.as_deref().unwrap_or("").as_bytes())
                }
                Some(Hole::Data) => write_event(out, data),
            }
        }
    }
}

/// The templates of one matching thread, made as rules fire.
#[derive(Default)]
pub(crate) struct Renderer {
    templates: HashMap<(u32, u8), Option<Template>>,
    scratch: Vec<u8>,
    /// The path of the file last written for, escaped.
    path: Option<(std::sync::Arc<Path>, Vec<u8>)>,
}

impl Renderer {
    /// Appends the OCSF line of a finding of `rule` (its index `rule_index`) on one event,
    /// given as its JSON text, to `out`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn line(
        &mut self,
        rule: &RuleMeta,
        rule_index: usize,
        time_ms: Option<i64>,
        path: &std::sync::Arc<Path>,
        meta: &EventMeta<'_>,
        text: &[u8],
        now_ms: i64,
        out: &mut Vec<u8>,
    ) {
        let shape = shape(
            time_ms.is_some(),
            meta.channel.is_some(),
            meta.event_code.is_some(),
        );
        let scratch = &mut self.scratch;
        let template = self
            .templates
            .entry((rule_index as u32, shape))
            .or_insert_with(|| Template::build(rule, shape, now_ms, scratch));
        let Some(template) = template else {
            // Writing to memory cannot fail.
            let _ = write_ocsf_text(rule, time_ms, meta, text, now_ms, scratch, out);
            return;
        };
        if !self
            .path
            .as_ref()
            .is_some_and(|(p, _)| std::sync::Arc::ptr_eq(p, path))
        {
            let mut escaped = Vec::new();
            escape_into(&mut escaped, path.display().to_string().as_bytes());
            self.path = Some((path.clone(), escaped));
        }
        let escaped = self.path.as_ref().map_or(&[][..], |(_, e)| e);
        template.write(time_ms.unwrap_or(now_ms), escaped, meta, text, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_serde_json_does() {
        let mut all = String::new();
        for c in (0u32..0x80).chain([0xe9, 0x2028, 0x1f600]) {
            all.push(char::from_u32(c).expect("char"));
        }
        for s in [all.as_str(), "", "plain", "a\"b\\c\nd\u{1}e"] {
            let mut got = vec![b'"'];
            escape_into(&mut got, s.as_bytes());
            got.push(b'"');
            assert_eq!(got, serde_json::to_vec(s).expect("json"), "{s:?}");
        }
    }

    #[test]
    fn templates_write_what_the_findings_are() {
        let mut loader = vigil_sigma::Loader::new();
        loader.add(
            "r1.yml",
            "title: 'A \"quoted\" title \\ with é'\nid: 11111111-2222-3333-4444-555555555555\n\
             level: high\ntags: [attack.execution, attack.t1059.001, attack.defense-evasion]\n\
             logsource: {product: windows, category: process_creation}\n\
             detection: {sel: {Image|endswith: x.exe}, condition: sel}\n",
        );
        loader.add(
            "dir/r2.yml",
            "title: No id, no level\nlogsource: {product: windows, service: security}\n\
             detection: {sel: {EventID: 4688}, condition: sel}\n",
        );
        let built = loader.build();
        assert!(built.errors.is_empty(), "{:?}", built.errors);
        let mut renderer = Renderer::default();
        let paths = [
            std::sync::Arc::<Path>::from(Path::new("/logs/a.jsonl")),
            std::sync::Arc::<Path>::from(Path::new("/logs/\"odd\"\u{1}/b.json")),
        ];
        let mut scratch = Vec::new();
        for (i, rule) in built.engine.rules().iter().enumerate() {
            for shape in 0..8u8 {
                assert!(
                    Template::build(rule, shape, 42, &mut scratch).is_some(),
                    "{shape}"
                );
            }
            for (n, path) in paths.iter().enumerate() {
                for (time, channel, code) in [
                    (Some(1_700_000_000_123), Some("Security"), Some("4688")),
                    (None, None, None),
                    (Some(0), None, Some("1")),
                    (Some(-5), Some("Sysmon \"x\"\n"), None),
                ] {
                    let meta = EventMeta {
                        path,
                        record: 1000 + n as u64,
                        channel: channel.map(String::from),
                        event_code: code.map(String::from),
                    };
                    let text = b"{\"a\":\n\"b\",\r\n\"c\":[1,2]}";
                    let (mut got, mut want) = (Vec::new(), Vec::new());
                    renderer.line(rule, i, time, path, &meta, text, 42, &mut got);
                    write_ocsf_text(rule, time, &meta, text, 42, &mut scratch, &mut want)
                        .expect("write");
                    assert_eq!(
                        String::from_utf8_lossy(&got),
                        String::from_utf8_lossy(&want)
                    );
                    let line: serde_json::Value = serde_json::from_slice(&got).expect("json");
                    assert_eq!(line["evidences"][0]["data"]["c"][1], 2);
                    assert!(!got[..got.len() - 1].contains(&b'\n'));
                }
            }
        }
    }

    #[test]
    fn decimals() {
        for n in [0, 7, -1, 10, 1_123_456_789_123_456_789, i64::MIN, i64::MAX] {
            let mut got = Vec::new();
            decimal_into(&mut got, n < 0, n.unsigned_abs());
            assert_eq!(got, n.to_string().into_bytes());
        }
        let mut got = Vec::new();
        decimal_into(&mut got, false, u64::MAX);
        assert_eq!(got, u64::MAX.to_string().into_bytes());
    }
}
