//! Builders of pgoutput messages in PostgreSQL's wire layout, for tests and
//! benchmarks (hand-built bytes, written the simple way).

/// A column value to encode.
#[derive(Clone, Copy, Debug)]
pub enum Col<'a> {
    Null,
    Unchanged,
    Text(&'a str),
    Binary(&'a [u8]),
}

pub fn tuple(out: &mut Vec<u8>, cols: &[Col<'_>]) {
    out.extend_from_slice(&(cols.len() as i16).to_be_bytes());
    for col in cols {
        match col {
            Col::Null => out.push(b'n'),
            Col::Unchanged => out.push(b'u'),
            Col::Text(t) => value(out, b't', t.as_bytes()),
            Col::Binary(b) => value(out, b'b', b),
        }
    }
}

fn value(out: &mut Vec<u8>, kind: u8, bytes: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

pub fn begin(final_lsn: u64, xid: u32) -> Vec<u8> {
    let mut out = vec![b'B'];
    out.extend_from_slice(&final_lsn.to_be_bytes());
    out.extend_from_slice(&1_000_000i64.to_be_bytes());
    out.extend_from_slice(&xid.to_be_bytes());
    out
}

pub fn commit(commit_lsn: u64, end_lsn: u64) -> Vec<u8> {
    let mut out = vec![b'C', 0];
    out.extend_from_slice(&commit_lsn.to_be_bytes());
    out.extend_from_slice(&end_lsn.to_be_bytes());
    out.extend_from_slice(&1_000_000i64.to_be_bytes());
    out
}

pub fn origin(commit_lsn: u64, name: &str) -> Vec<u8> {
    let mut out = vec![b'O'];
    out.extend_from_slice(&commit_lsn.to_be_bytes());
    cstr(&mut out, name);
    out
}

/// A relation whose columns are all `text` (oid 25), `id` being the key.
pub fn relation(id: u32, schema: &str, name: &str, columns: &[&str]) -> Vec<u8> {
    let mut out = vec![b'R'];
    out.extend_from_slice(&id.to_be_bytes());
    cstr(&mut out, schema);
    cstr(&mut out, name);
    out.push(b'd');
    out.extend_from_slice(&(columns.len() as i16).to_be_bytes());
    for column in columns {
        out.push(u8::from(*column == "id"));
        cstr(&mut out, column);
        out.extend_from_slice(&25u32.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
    }
    out
}

pub fn type_info(oid: u32, schema: &str, name: &str) -> Vec<u8> {
    let mut out = vec![b'Y'];
    out.extend_from_slice(&oid.to_be_bytes());
    cstr(&mut out, schema);
    cstr(&mut out, name);
    out
}

pub fn insert(relation_id: u32, cols: &[Col<'_>]) -> Vec<u8> {
    let mut out = vec![b'I'];
    out.extend_from_slice(&relation_id.to_be_bytes());
    out.push(b'N');
    tuple(&mut out, cols);
    out
}

/// `old`: `Some((b'K' or b'O', columns))`.
pub fn update(relation_id: u32, old: Option<(u8, &[Col<'_>])>, new: &[Col<'_>]) -> Vec<u8> {
    let mut out = vec![b'U'];
    out.extend_from_slice(&relation_id.to_be_bytes());
    if let Some((kind, cols)) = old {
        out.push(kind);
        tuple(&mut out, cols);
    }
    out.push(b'N');
    tuple(&mut out, new);
    out
}

pub fn delete(relation_id: u32, kind: u8, old: &[Col<'_>]) -> Vec<u8> {
    let mut out = vec![b'D'];
    out.extend_from_slice(&relation_id.to_be_bytes());
    out.push(kind);
    tuple(&mut out, old);
    out
}

pub fn truncate(options: u8, relation_ids: &[u32]) -> Vec<u8> {
    let mut out = vec![b'T'];
    out.extend_from_slice(&(relation_ids.len() as i32).to_be_bytes());
    out.push(options);
    for id in relation_ids {
        out.extend_from_slice(&id.to_be_bytes());
    }
    out
}

pub fn message(transactional: bool, lsn: u64, prefix: &str, content: &[u8]) -> Vec<u8> {
    let mut out = vec![b'M', u8::from(transactional)];
    out.extend_from_slice(&lsn.to_be_bytes());
    cstr(&mut out, prefix);
    out.extend_from_slice(&(content.len() as i32).to_be_bytes());
    out.extend_from_slice(content);
    out
}
