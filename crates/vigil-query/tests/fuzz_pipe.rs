//! Bounded random testing of the pipe-language parser (stable, in CI): mutated queries
//! parse or fail with an error whose rendering points inside the text, never a panic.
//! `VIGIL_FUZZ_ITERS` sets the iterations (default 20000).

use vigil_query::pipe::parse;

const SEEDS: &[&str] = &[
    r#"process_activity | where actor.process.file.name == "curl" | count by device.hostname"#,
    r#"file_system_activity | where not (file.path startswith "/tmp/" or file.path matches "^/dev/shm") | take 5"#,
    r#"dns_activity | since 7d | summarize count(), dcount(query.hostname) as n, min(time) by device.hostname | sort by n desc"#,
    r#"network_activity | between "2026-01-01" and '2026-01-02T00:00:00+01:00' | where dst_endpoint.port in (22, 443) | distinct dst_endpoint.ip"#,
    "process_activity\n| where process.pid >= -1 and process.cmd_line contains 'a\\'b' // comment\n| project `type`, process.name",
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "|",
    "where",
    "(",
    ")",
    "\"",
    "'",
    "`",
    ".",
    ",",
    "==",
    "!=",
    "<=",
    "in",
    "not",
    "and",
    "or",
    "1h",
    "9999999999999999999d",
    "-",
    "é",
    "€",
    "\n",
    " ",
    "count",
    "by",
    "sort",
    "take",
    "-1",
    "0.5.5",
    "matches",
    "\"[\"",
    "between",
    "since",
    "\\",
];

fn mutate(seed: &str, rng: &mut Rng) -> String {
    let mut s: Vec<char> = seed.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(3) {
            0 if !s.is_empty() => {
                let end = (at + rng.below(8)).min(s.len());
                s.drain(at.min(s.len())..end);
            }
            1 => {
                let piece: Vec<char> = PIECES[rng.below(PIECES.len())].chars().collect();
                s.splice(at..at, piece);
            }
            _ => {
                let c = char::from_u32(rng.below(0x3000) as u32).unwrap_or('x');
                s.insert(at, c);
            }
        }
    }
    s.into_iter().collect()
}

#[test]
fn mutated_queries_parse_or_fail_with_a_position_inside_the_text() {
    let iters: usize = std::env::var("VIGIL_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut rng = Rng(0x005E_ED0F_F1E5);
    let (mut ok, mut bad) = (0, 0);
    for _ in 0..iters {
        let text = mutate(SEEDS[rng.below(SEEDS.len())], &mut rng);
        match parse(&text) {
            Ok(_) => ok += 1,
            Err(e) => {
                bad += 1;
                assert!(e.start <= text.len(), "{text:?}: {e:?}");
                let shown = e.render(&text);
                assert!(shown.contains('^'), "{text:?}: {shown}");
                let (pos, _) = shown.split_once(": ").expect("position first");
                let (line, col) = pos.split_once(':').expect("line:col");
                let line: usize = line.parse().expect("line");
                let col: usize = col.parse().expect("col");
                let l = text.split('\n').nth(line - 1).expect("the line exists");
                assert!(col <= l.chars().count() + 1, "{text:?}: {shown}");
            }
        }
    }
    // Both outcomes are exercised.
    assert!(ok > iters / 50 && bad > iters / 50, "ok {ok}, bad {bad}");
}
