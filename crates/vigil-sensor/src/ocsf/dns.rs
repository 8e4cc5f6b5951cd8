//! The question of a DNS message, parsed from the bytes a process sent to port 53.

/// What a DNS query asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Message id.
    pub id: u16,
    /// Opcode (0: standard query).
    pub opcode: u8,
    /// The name asked for, without the trailing dot.
    pub name: String,
    /// Record type number.
    pub qtype: u16,
    /// Class number.
    pub qclass: u16,
}

/// The mnemonic of a record type.
pub fn type_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        other => format!("TYPE{other}"),
    }
}

/// The mnemonic of a class.
pub fn class_name(c: u16) -> String {
    match c {
        1 => "IN".into(),
        3 => "CH".into(),
        255 => "ANY".into(),
        other => format!("CLASS{other}"),
    }
}

/// Why a payload sent to port 53 gives no DNS question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// A response (QR set), not a query.
    #[error("a DNS response, not a query")]
    Response,
    /// A query without a question (QDCOUNT 0).
    #[error("a DNS message without a question")]
    NoQuestion,
    /// Shorter than the 12-byte header.
    #[error("{0} bytes, shorter than a DNS header (12)")]
    ShortHeader(usize),
    /// A label length with the top bits set (a compression pointer or a reserved type),
    /// which a question's name does not use.
    #[error("offset {0}: label type {1:#04x} in the question's name")]
    LabelType(usize, u8),
    /// The name is longer than DNS allows (255 bytes).
    #[error("offset {0}: the question's name is longer than 255 bytes")]
    NameTooLong(usize),
    /// The message ends inside the question.
    #[error("offset {0}: the message ends inside the question")]
    Truncated(usize),
}

impl DnsError {
    /// Whether the payload is broken (not just a DNS message that asks nothing).
    pub fn is_malformed(&self) -> bool {
        !matches!(self, DnsError::Response | DnsError::NoQuestion)
    }
}

/// Parses the first question of a DNS message.
pub fn parse_question(msg: &[u8]) -> Result<Question, DnsError> {
    let (Some(&[id0, id1, f0, f1, _, _]), Some(&[q0, q1])) = (msg.first_chunk(), msg.get(4..6))
    else {
        return Err(DnsError::ShortHeader(msg.len()));
    };
    if msg.len() < 12 {
        return Err(DnsError::ShortHeader(msg.len()));
    }
    let flags = u16::from_be_bytes([f0, f1]);
    if flags & 0x8000 != 0 {
        return Err(DnsError::Response);
    }
    if u16::from_be_bytes([q0, q1]) == 0 {
        return Err(DnsError::NoQuestion);
    }
    let mut pos = 12;
    let mut labels: Vec<String> = Vec::new();
    let mut total = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated(pos))?;
        if len == 0 {
            pos += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return Err(DnsError::LabelType(pos, len & 0xc0));
        }
        let len = usize::from(len);
        total += len + 1;
        if total > 255 {
            return Err(DnsError::NameTooLong(pos));
        }
        let label = msg
            .get(pos + 1..pos + 1 + len)
            .ok_or(DnsError::Truncated(pos))?;
        labels.push(
            label
                .iter()
                .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
                .collect(),
        );
        pos += 1 + len;
    }
    let Some(&[t0, t1, c0, c1]) = msg.get(pos..pos + 4) else {
        return Err(DnsError::Truncated(pos));
    };
    Ok(Question {
        id: u16::from_be_bytes([id0, id1]),
        opcode: ((flags >> 11) & 0xf) as u8,
        name: labels.join("."),
        qtype: u16::from_be_bytes([t0, t1]),
        qclass: u16::from_be_bytes([c0, c1]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    #[test]
    fn parses_a_query() {
        let q = parse_question(&query("evil.example.com", 28)).expect("parses");
        assert_eq!(q.name, "evil.example.com");
        assert_eq!((q.id, q.qtype, q.qclass, q.opcode), (0x1234, 28, 1, 0));
        assert_eq!(type_name(q.qtype), "AAAA");
    }

    #[test]
    fn rejects_garbage_with_the_reason() {
        assert_eq!(parse_question(&[]), Err(DnsError::ShortHeader(0)));
        assert_eq!(parse_question(&[0; 11]), Err(DnsError::ShortHeader(11)));
        let mut truncated = query("a.b", 1);
        truncated.truncate(15);
        assert_eq!(parse_question(&truncated), Err(DnsError::Truncated(14)));
        let mut no_type = query("a.b", 1);
        no_type.truncate(no_type.len() - 1);
        assert_eq!(parse_question(&no_type), Err(DnsError::Truncated(17)));
        let mut response = query("a.b", 1);
        response[2] |= 0x80;
        assert_eq!(parse_question(&response), Err(DnsError::Response));
        assert!(!DnsError::Response.is_malformed());
        let mut pointer = query("a.b", 1);
        pointer[12] = 0xc0;
        assert_eq!(parse_question(&pointer), Err(DnsError::LabelType(12, 0xc0)));
        assert!(DnsError::LabelType(12, 0xc0).is_malformed());
        let long = vec!["x".repeat(63); 5].join(".");
        assert_eq!(
            parse_question(&query(&long, 1)),
            Err(DnsError::NameTooLong(12 + 64 * 3))
        );
        // 3 labels of 63 bytes and one of 61, each with its length byte: 254 bytes.
        let longest = vec!["x".repeat(63); 3].join(".") + "." + &"y".repeat(61);
        assert_eq!(
            parse_question(&query(&longest, 1)).map(|q| q.name),
            Ok(longest)
        );
    }

    /// Queries for random names parse back to them; mutated ones and random bytes parse
    /// or fail with a reason, never panic.
    #[test]
    fn random_queries_parse_back_and_mutations_fail_cleanly() {
        let mut rng = crate::fuzz::Rng::for_test(4);
        for i in 0..crate::fuzz::iterations() {
            let name: Vec<String> = (0..=rng.below(4))
                .map(|_| {
                    (0..=rng.below(20))
                        .map(|_| rng.pick(&['a', 'z', '-', '0', '_']))
                        .collect()
                })
                .collect();
            let name = name.join(".");
            let qtype = rng.next() as u16;
            let q = query(&name, qtype);
            let parsed = parse_question(&q).expect("a valid query");
            assert_eq!((parsed.name.as_str(), parsed.qtype), (name.as_str(), qtype));
            let bad = if rng.one_in(4) {
                let n = rng.below(64);
                rng.bytes(n)
            } else {
                rng.mutate(&q)
            };
            if let Ok(q) = crate::fuzz::no_panic("parse_question", i, &bad, || parse_question(&bad))
            {
                assert!(q.name.len() <= 255, "iteration {i}");
            }
        }
    }
}
