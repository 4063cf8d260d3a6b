//! The `loadbalance` plugin (`round_robin`, its only policy done here): the A, AAAA and MX
//! records of each successful response in a random order, CNAMEs kept before addresses (glibc's
//! stub resolver wants them first), as CoreDNS's plugin shuffles them.

use std::cell::Cell;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Record, RecordType};

thread_local! {
    /// A xorshift generator per thread, seeded from the process's random hasher keys: cheap
    /// enough to call per record on the hot path, and no lock.
    static STATE: Cell<u64> = Cell::new({
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(std::thread::current().id()) | 1
    });
}

/// A pseudo-random number (not for anything secret).
pub(crate) fn fast_random() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

/// Shuffle `m`'s sections, unless it is an error or a zone transfer.
pub fn shuffle(m: &mut Message) {
    if m.metadata.response_code != ResponseCode::NoError {
        return;
    }
    if m.queries
        .first()
        .is_some_and(|q| matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR))
    {
        return;
    }
    shuffle_section(&mut m.answers);
    shuffle_section(&mut m.authorities);
    shuffle_section(&mut m.additionals);
}

fn shuffle_section(records: &mut Vec<Record>) {
    if records.len() < 2 {
        return;
    }
    let first = records[0].record_type();
    if matches!(first, RecordType::A | RecordType::AAAA)
        && records.iter().all(|r| r.record_type() == first)
    {
        // The common case (a Service's or a headless Service's addresses): in place.
        shuffle_slice(records);
        return;
    }
    // Mixed: CNAMEs first, then the other records, then the addresses, then the MX records,
    // the last two shuffled.
    let mut cname = Vec::new();
    let mut rest = Vec::new();
    let mut address = Vec::new();
    let mut mx = Vec::new();
    for r in records.drain(..) {
        match r.record_type() {
            RecordType::CNAME => cname.push(r),
            RecordType::A | RecordType::AAAA => address.push(r),
            RecordType::MX => mx.push(r),
            _ => rest.push(r),
        }
    }
    shuffle_slice(&mut address);
    shuffle_slice(&mut mx);
    records.extend(cname);
    records.extend(rest);
    records.extend(address);
    records.extend(mx);
}

/// Fisher–Yates.
fn shuffle_slice<T>(v: &mut [T]) {
    for i in (1..v.len()).rev() {
        let j = (fast_random() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::{A, CNAME, MX, TXT};
    use hickory_proto::rr::{Name, RData};
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn a(i: u8) -> Record {
        Record::from_rdata(
            name("web.default.svc.cluster.local."),
            5,
            RData::A(A(Ipv4Addr::new(10, 0, 0, i))),
        )
    }

    fn response(qtype: RecordType, answers: Vec<Record>) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name("web.default.svc.cluster.local."), qtype));
        m.answers = answers;
        m
    }

    #[test]
    fn addresses_come_in_every_order_and_none_is_lost() {
        let mut firsts = HashSet::new();
        for _ in 0..200 {
            let mut m = response(RecordType::A, (1..=4).map(a).collect());
            shuffle(&mut m);
            let mut got: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
            firsts.insert(got[0].clone());
            got.sort();
            assert_eq!(got, ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]);
        }
        assert_eq!(firsts.len(), 4, "each address first some time: {firsts:?}");
    }

    #[test]
    fn cnames_stay_first_and_errors_and_transfers_are_left_alone() {
        let cname = Record::from_rdata(
            name("ext.default.svc.cluster.local."),
            5,
            RData::CNAME(CNAME(name("web.default.svc.cluster.local."))),
        );
        let txt = Record::from_rdata(
            name("web.default.svc.cluster.local."),
            5,
            RData::TXT(TXT::new(vec!["x".into()])),
        );
        let mx = |p: u16| {
            Record::from_rdata(
                name("example.test."),
                5,
                RData::MX(MX::new(p, name("mail.example.test."))),
            )
        };
        for _ in 0..50 {
            let mut m = response(
                RecordType::A,
                vec![a(1), mx(1), a(2), txt.clone(), cname.clone(), mx(2)],
            );
            shuffle(&mut m);
            let types: Vec<RecordType> = m.answers.iter().map(Record::record_type).collect();
            assert_eq!(
                types,
                [
                    RecordType::CNAME,
                    RecordType::TXT,
                    RecordType::A,
                    RecordType::A,
                    RecordType::MX,
                    RecordType::MX
                ]
            );
        }
        let ordered: Vec<Record> = (1..=4).map(a).collect();
        let mut nx = response(RecordType::A, ordered.clone());
        nx.metadata.response_code = ResponseCode::NXDomain;
        let mut axfr = response(RecordType::AXFR, ordered.clone());
        for _ in 0..20 {
            shuffle(&mut nx);
            shuffle(&mut axfr);
        }
        assert_eq!(nx.answers, ordered);
        assert_eq!(axfr.answers, ordered);
    }
}
