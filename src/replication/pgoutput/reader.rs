//! The bounds-checked cursor the pgoutput decoder reads messages with:
//! every read checks what is left and reports the field and byte offset.

use bytes::Bytes;

use super::{DecodeError, DecodeProblem, Relation, RelationColumn, TupleData};

/// A bounds-checked cursor over one message.
pub(super) struct Reader<'a> {
    pub(super) data: &'a Bytes,
    pub(super) pos: usize,
    pub(super) message: &'static str,
}

impl Reader<'_> {
    pub(super) fn error(&self, field: &'static str, problem: DecodeProblem) -> DecodeError {
        DecodeError {
            message: self.message,
            field,
            offset: self.pos,
            problem,
        }
    }

    pub(super) fn need(&self, needed: usize, field: &'static str) -> Result<(), DecodeError> {
        let available = self.data.len() - self.pos;
        if needed > available {
            return Err(self.error(field, DecodeProblem::Truncated { needed, available }));
        }
        Ok(())
    }

    pub(super) fn take<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        self.need(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.data[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take::<1>(field)?[0])
    }

    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(field)?))
    }

    pub(super) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(field)?))
    }

    pub(super) fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take(field)?))
    }

    /// An Int32 count or length that must not be negative.
    pub(super) fn count_i32(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let start = self.pos;
        let value = i32::from_be_bytes(self.take(field)?);
        usize::try_from(value).map_err(|_| DecodeError {
            offset: start,
            ..self.error(field, DecodeProblem::NegativeCount(value.into()))
        })
    }

    /// One byte that must be among `allowed`.
    pub(super) fn expect(
        &mut self,
        allowed: &[u8],
        field: &'static str,
        expected: &'static str,
    ) -> Result<u8, DecodeError> {
        let found = self.u8(field)?;
        if !allowed.contains(&found) {
            self.pos -= 1;
            return Err(self.error(field, DecodeProblem::UnexpectedByte { found, expected }));
        }
        Ok(found)
    }

    pub(super) fn bytes(&mut self, len: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        self.need(len, field)?;
        let out = self.data.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    /// A NUL-terminated UTF-8 string.
    pub(super) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(self.error(field, DecodeProblem::UnterminatedString));
        };
        let text = std::str::from_utf8(&rest[..end])
            .map_err(|_| self.error(field, DecodeProblem::NotUtf8))?
            .to_owned();
        self.pos += end + 1;
        Ok(text)
    }

    pub(super) fn relation(&mut self) -> Result<Relation, DecodeError> {
        let id = self.u32("relation id")?;
        let schema = self.string("schema name")?;
        let name = self.string("table name")?;
        let replica_identity = self.u8("replica identity")?;
        let count = self.u16("column count")?;
        // Each column takes at least 10 bytes: reject a bogus count before
        // allocating for it.
        self.need(usize::from(count) * 10, "columns")?;
        let mut columns = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            columns.push(RelationColumn {
                flags: self.u8("column flags")?,
                name: self.string("column name")?,
                type_oid: self.u32("column type oid")?,
                type_modifier: i32::from_be_bytes(self.take("column type modifier")?),
            });
        }
        Ok(Relation {
            id,
            schema,
            name,
            replica_identity,
            columns,
        })
    }

    pub(super) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let start = self.pos;
        let value = i16::from_be_bytes(self.take(field)?);
        u16::try_from(value).map_err(|_| DecodeError {
            offset: start,
            ..self.error(field, DecodeProblem::NegativeCount(value.into()))
        })
    }

    /// TupleData: a column count, then per column a kind byte and, for `t`
    /// and `b`, an Int32 length and the value. Validated here, read lazily.
    pub(super) fn tuple(&mut self) -> Result<TupleData, DecodeError> {
        let count = self.u16("tuple column count")?;
        let start = self.pos;
        for _ in 0..count {
            match self.expect(b"nutb", "column kind", "'n', 'u', 't' or 'b'")? {
                b'n' | b'u' => {}
                _ => {
                    let len = self.count_i32("column value length")?;
                    self.need(len, "column value")?;
                    self.pos += len;
                }
            }
        }
        Ok(TupleData {
            raw: self.data.slice(start..self.pos),
            count,
        })
    }

    pub(super) fn finish(&self) -> Result<(), DecodeError> {
        let left = self.data.len() - self.pos;
        if left > 0 {
            return Err(self.error("end of message", DecodeProblem::TrailingBytes(left)));
        }
        Ok(())
    }
}
