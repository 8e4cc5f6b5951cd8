//! Which indicators an OCSF event names.

use crate::set::{Hit, IntelSet};
use vigil_event::model::{File, NetworkEndpoint};
use vigil_event::OcsfEvent;

impl IntelSet {
    /// Appends to `hits` every indicator `event` names: the hashes of a process's
    /// executable (Process Activity) or of a file (File System Activity, the file and
    /// what it became), the addresses of both ends of a connection (Network Activity),
    /// and the name a DNS query asks for and the addresses it got (DNS Activity). Each
    /// indicator once per event.
    pub fn match_event<'s>(&'s self, event: &OcsfEvent, hits: &mut Vec<Hit<'s>>) {
        if self.is_empty() {
            return;
        }
        let start = hits.len();
        match event {
            OcsfEvent::Process(p) => self.file(p.process.file.as_ref(), hits),
            OcsfEvent::File(f) => {
                self.file(Some(&f.file), hits);
                self.file(f.file_result.as_ref(), hits);
            }
            OcsfEvent::Network(n) => {
                self.endpoint(n.dst_endpoint.as_ref(), hits);
                self.endpoint(n.src_endpoint.as_ref(), hits);
            }
            OcsfEvent::Dns(d) => {
                if let Some(h) = d
                    .query
                    .as_ref()
                    .and_then(|q| self.match_domain(&q.hostname))
                {
                    hits.push(h);
                }
                for a in &d.answers {
                    if let Ok(ip) = a.rdata.trim().parse() {
                        hits.extend(self.match_ip(ip));
                    }
                }
            }
            _ => {}
        }
        // The same indicator twice in one event (a file renamed onto itself, an answer
        // repeated) is one hit.
        let mut i = start;
        while i < hits.len() {
            if hits[start..i]
                .iter()
                .any(|h| h.kind == hits[i].kind && h.indicator == hits[i].indicator)
            {
                hits.remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn file<'s>(&'s self, file: Option<&File>, hits: &mut Vec<Hit<'s>>) {
        for h in file.map(|f| f.hashes.as_slice()).unwrap_or_default() {
            hits.extend(self.match_hash(&h.value));
        }
    }

    fn endpoint<'s>(&'s self, e: Option<&NetworkEndpoint>, hits: &mut Vec<Hit<'s>>) {
        if let Some(ip) = e
            .and_then(|e| e.ip.as_deref())
            .and_then(|ip| ip.parse().ok())
        {
            hits.extend(self.match_ip(ip));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Format, IndicatorKind, IntelSet};
    use vigil_event::OcsfEvent;

    fn event(json: serde_json::Value) -> OcsfEvent {
        OcsfEvent::from_json(json).expect("event")
    }

    #[test]
    fn processes_files_connections_and_queries_are_matched() {
        let sha = "ab".repeat(32);
        let mut s = IntelSet::new();
        let r = s.add(
            "ioc.txt",
            &format!("{sha}\n203.0.113.0/24\nc2.example\n198.51.100.7\n"),
            Format::List,
        );
        assert!(r.problems.is_empty());
        let base = serde_json::json!({"time": 1, "metadata": {"version": "1.8.0", "product": {"name": "t"}}});
        let with = |mut extra: serde_json::Value| {
            for (k, v) in base.as_object().expect("object") {
                extra[k] = v.clone();
            }
            event(extra)
        };
        let mut hits = Vec::new();
        let exec = with(serde_json::json!({"class_uid": 1007, "activity_id": 1,
            "process": {"pid": 5, "file": {"name": "x", "type_id": 1,
                "hashes": [{"algorithm_id": 3, "value": sha.to_uppercase()}]}}}));
        s.match_event(&exec, &mut hits);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].kind, IndicatorKind::Sha256);
        hits.clear();
        let conn = with(serde_json::json!({"class_uid": 4001, "activity_id": 1,
            "src_endpoint": {"ip": "10.0.0.2"}, "dst_endpoint": {"ip": "203.0.113.99", "port": 443}}));
        s.match_event(&conn, &mut hits);
        assert_eq!(
            hits.iter()
                .map(|h| h.indicator.as_str())
                .collect::<Vec<_>>(),
            ["203.0.113.0/24"]
        );
        hits.clear();
        let dns = with(serde_json::json!({"class_uid": 4003, "activity_id": 2,
            "query": {"hostname": "www.C2.example"},
            "answers": [{"rdata": "198.51.100.7"}, {"rdata": "198.51.100.7"}, {"rdata": "not an ip"}]}));
        s.match_event(&dns, &mut hits);
        let got: Vec<(&str, &str)> = hits
            .iter()
            .map(|h| (h.indicator.as_str(), h.observed.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("c2.example", "www.c2.example"),
                ("198.51.100.7", "198.51.100.7")
            ]
        );
        hits.clear();
        let clean = with(
            serde_json::json!({"class_uid": 4001, "activity_id": 1, "dst_endpoint": {"ip": "8.8.8.8"}}),
        );
        s.match_event(&clean, &mut hits);
        assert!(hits.is_empty());
    }
}
