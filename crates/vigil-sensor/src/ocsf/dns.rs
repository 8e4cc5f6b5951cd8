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

/// Parses the first question of a DNS message; `None` when it is not one.
pub fn parse_question(msg: &[u8]) -> Option<Question> {
    if msg.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 != 0 {
        return None; // a response, not a query
    }
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    if qdcount == 0 {
        return None;
    }
    let mut pos = 12;
    let mut labels: Vec<String> = Vec::new();
    let mut total = 0usize;
    loop {
        let len = usize::from(*msg.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None; // no compression pointers in a question we parse
        }
        let label = msg.get(pos..pos + len)?;
        total += len + 1;
        if total > 255 {
            return None;
        }
        labels.push(
            label
                .iter()
                .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
                .collect(),
        );
        pos += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]);
    let qclass = u16::from_be_bytes([*msg.get(pos + 2)?, *msg.get(pos + 3)?]);
    Some(Question {
        id,
        opcode: ((flags >> 11) & 0xf) as u8,
        name: labels.join("."),
        qtype,
        qclass,
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
    fn rejects_garbage_without_panicking() {
        assert_eq!(parse_question(&[]), None);
        assert_eq!(parse_question(&[0; 11]), None);
        let mut truncated = query("a.b", 1);
        truncated.truncate(15);
        assert_eq!(parse_question(&truncated), None);
        let mut response = query("a.b", 1);
        response[2] |= 0x80;
        assert_eq!(parse_question(&response), None);
        let mut pointer = query("a.b", 1);
        pointer[12] = 0xc0;
        assert_eq!(parse_question(&pointer), None);
        let mut rng = 0x9e37_79b9u32;
        for _ in 0..2000 {
            let len = (rng % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 17;
                    rng ^= rng << 5;
                    rng as u8
                })
                .collect();
            let _ = parse_question(&bytes);
        }
    }
}
