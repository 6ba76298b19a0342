//! Typed extended-protocol (and simple Query) messages the encryption layer rewrites: Query,
//! Parse, Bind, Describe, Execute, Close from the client; RowDescription, DataRow and
//! ParameterDescription from the server. Each decoder reads one isolated frame body with the
//! bounds-checked cursor (never panics, rejects trailing bytes); each encoder writes a whole
//! message. Values borrow from the frame, so decoding copies no cell.

use bytes::{BufMut, Bytes, BytesMut};

use super::wire::{Builder, Cursor, DecodeError};

/// Statement (`S`) or portal (`P`), as in Describe and Close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Statement,
    Portal,
}

impl Target {
    fn decode(c: &mut Cursor<'_>) -> Result<Target, DecodeError> {
        match c.u8()? {
            b'S' => Ok(Target::Statement),
            b'P' => Ok(Target::Portal),
            _ => Err(c.err()),
        }
    }

    fn byte(self) -> u8 {
        match self {
            Target::Statement => b'S',
            Target::Portal => b'P',
        }
    }
}

fn done<T>(c: &Cursor<'_>, v: T) -> Result<T, DecodeError> {
    if c.is_empty() { Ok(v) } else { Err(c.err()) }
}

/// A 16-bit count, read unsigned as PostgreSQL reads it (`pq_getmsgint(msg, 2)`): a Parse or
/// Bind may carry up to 65,535 parameters.
fn count(c: &mut Cursor<'_>) -> Result<usize, DecodeError> {
    Ok(usize::from(c.i16()? as u16))
}

/// The SQL text of a Query ('Q') body.
pub fn decode_query(body: &[u8]) -> Result<&str, DecodeError> {
    let mut c = Cursor::new(body, "Query");
    let q = c.cstr()?;
    done(&c, q)
}

/// Encodes a Query message.
pub fn query(sql: &str) -> Bytes {
    Builder::new(b'Q').cstr(sql).finish()
}

/// A Parse ('P') message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse<'a> {
    pub name: &'a str,
    pub query: &'a str,
    pub param_types: Vec<u32>,
}

impl<'a> Parse<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body, "Parse");
        let name = c.cstr()?;
        let query = c.cstr()?;
        let n = count(&mut c)?;
        let mut param_types = Vec::with_capacity(n);
        for _ in 0..n {
            param_types.push(c.i32()? as u32);
        }
        done(
            &c,
            Parse {
                name,
                query,
                param_types,
            },
        )
    }

    pub fn encode(&self) -> Bytes {
        let mut b = Builder::new(b'P')
            .cstr(self.name)
            .cstr(self.query)
            .i16(self.param_types.len() as i16);
        for t in &self.param_types {
            b = b.i32(*t as i32);
        }
        b.finish()
    }
}

/// Format code 0 = text, 1 = binary.
pub const FORMAT_TEXT: i16 = 0;
pub const FORMAT_BINARY: i16 = 1;

/// The format of item `i` under the protocol's rules for a format-code list: none = all text,
/// one = all that, otherwise one per item.
pub fn format_of(codes: &[i16], i: usize) -> i16 {
    match codes {
        [] => FORMAT_TEXT,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(FORMAT_TEXT),
    }
}

/// A Bind ('B') message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    pub portal: &'a str,
    pub statement: &'a str,
    pub param_formats: Vec<i16>,
    pub params: Vec<Option<&'a [u8]>>,
    pub result_formats: Vec<i16>,
}

impl<'a> Bind<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body, "Bind");
        let portal = c.cstr()?;
        let statement = c.cstr()?;
        let nf = count(&mut c)?;
        let mut param_formats = Vec::with_capacity(nf);
        for _ in 0..nf {
            param_formats.push(c.i16()?);
        }
        let np = count(&mut c)?;
        if nf > 1 && nf != np {
            return Err(c.err());
        }
        let mut params = Vec::with_capacity(np);
        for _ in 0..np {
            params.push(c.value()?);
        }
        let nr = count(&mut c)?;
        let mut result_formats = Vec::with_capacity(nr);
        for _ in 0..nr {
            result_formats.push(c.i16()?);
        }
        done(
            &c,
            Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            },
        )
    }

    /// Encodes with owned parameter values (`formats` one per parameter or the short forms).
    pub fn encode_with(&self, formats: &[i16], params: &[Option<&[u8]>]) -> Bytes {
        let size: usize = params.iter().map(|p| 4 + p.map_or(0, <[u8]>::len)).sum();
        let mut buf = BytesMut::with_capacity(
            32 + self.portal.len() + self.statement.len() + size + 2 * formats.len(),
        );
        buf.put_u8(b'B');
        buf.put_i32(0);
        put_cstr(&mut buf, self.portal);
        put_cstr(&mut buf, self.statement);
        buf.put_i16(formats.len() as i16);
        for f in formats {
            buf.put_i16(*f);
        }
        buf.put_i16(params.len() as i16);
        for p in params {
            match p {
                None => buf.put_i32(-1),
                Some(v) => {
                    buf.put_i32(v.len() as i32);
                    buf.put_slice(v);
                }
            }
        }
        buf.put_i16(self.result_formats.len() as i16);
        for f in &self.result_formats {
            buf.put_i16(*f);
        }
        finish(buf)
    }

    pub fn encode(&self) -> Bytes {
        self.encode_with(&self.param_formats, &self.params)
    }
}

fn put_cstr(buf: &mut BytesMut, s: &str) {
    buf.extend(s.bytes().filter(|&b| b != 0));
    buf.put_u8(0);
}

fn finish(mut buf: BytesMut) -> Bytes {
    let len = (buf.len() - 1) as i32;
    buf[1..5].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

/// A Describe ('D') or Close ('C') message: what and which name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named<'a> {
    pub target: Target,
    pub name: &'a str,
}

impl<'a> Named<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body, "Describe/Close");
        let target = Target::decode(&mut c)?;
        let name = c.cstr()?;
        done(&c, Named { target, name })
    }

    /// Encodes as a Describe (`tag` b'D') or Close (b'C').
    pub fn encode(&self, tag: u8) -> Bytes {
        Builder::new(tag)
            .u8(self.target.byte())
            .cstr(self.name)
            .finish()
    }
}

/// An Execute ('E') message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execute<'a> {
    pub portal: &'a str,
    pub max_rows: i32,
}

impl<'a> Execute<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor::new(body, "Execute");
        let portal = c.cstr()?;
        let max_rows = c.i32()?;
        done(&c, Execute { portal, max_rows })
    }

    pub fn encode(&self) -> Bytes {
        Builder::new(b'E')
            .cstr(self.portal)
            .i32(self.max_rows)
            .finish()
    }
}

/// A Sync message.
pub fn sync() -> Bytes {
    Builder::new(b'S').finish()
}

/// One field of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub table_oid: u32,
    pub attnum: i16,
    pub type_oid: u32,
    pub typlen: i16,
    pub typmod: i32,
    pub format: i16,
}

/// Decodes a RowDescription ('T') body.
pub fn decode_row_description(body: &[u8]) -> Result<Vec<Field<'_>>, DecodeError> {
    let mut c = Cursor::new(body, "RowDescription");
    let n = count(&mut c)?;
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        fields.push(Field {
            name: c.cbytes()?,
            table_oid: c.i32()? as u32,
            attnum: c.i16()?,
            type_oid: c.i32()? as u32,
            typlen: c.i16()?,
            typmod: c.i32()?,
            format: c.i16()?,
        });
    }
    done(&c, fields)
}

/// Encodes a RowDescription.
pub fn row_description(fields: &[Field<'_>]) -> Bytes {
    let mut b = Builder::new(b'T').i16(fields.len() as i16);
    for f in fields {
        b = b
            .bytes(f.name)
            .u8(0)
            .i32(f.table_oid as i32)
            .i16(f.attnum)
            .i32(f.type_oid as i32)
            .i16(f.typlen)
            .i32(f.typmod)
            .i16(f.format);
    }
    b.finish()
}

/// Decodes a DataRow ('D') body into its cells (`None` = NULL).
pub fn decode_data_row(body: &[u8]) -> Result<Vec<Option<&[u8]>>, DecodeError> {
    let mut c = Cursor::new(body, "DataRow");
    let n = count(&mut c)?;
    let mut cells = Vec::with_capacity(n);
    for _ in 0..n {
        cells.push(c.value()?);
    }
    done(&c, cells)
}

/// Encodes a DataRow from cells given as byte slices.
pub fn data_row<T: AsRef<[u8]>>(cells: &[Option<T>]) -> Bytes {
    let size: usize = cells
        .iter()
        .map(|c| 4 + c.as_ref().map_or(0, |v| v.as_ref().len()))
        .sum();
    let mut buf = BytesMut::with_capacity(7 + size);
    buf.put_u8(b'D');
    buf.put_i32(0);
    buf.put_i16(cells.len() as i16);
    for cell in cells {
        match cell {
            None => buf.put_i32(-1),
            Some(v) => {
                buf.put_i32(v.as_ref().len() as i32);
                buf.put_slice(v.as_ref());
            }
        }
    }
    finish(buf)
}

/// Decodes a ParameterDescription ('t') body.
pub fn decode_parameter_description(body: &[u8]) -> Result<Vec<u32>, DecodeError> {
    let mut c = Cursor::new(body, "ParameterDescription");
    let n = count(&mut c)?;
    let mut oids = Vec::with_capacity(n);
    for _ in 0..n {
        oids.push(c.i32()? as u32);
    }
    done(&c, oids)
}

/// Encodes a ParameterDescription.
pub fn parameter_description(oids: &[u32]) -> Bytes {
    oids.iter()
        .fold(Builder::new(b't').i16(oids.len() as i16), |b, o| {
            b.i32(*o as i32)
        })
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(b: &Bytes) -> &[u8] {
        &b[5..]
    }

    fn len_ok(b: &Bytes) {
        assert_eq!(
            i32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize,
            b.len() - 1
        );
    }

    #[test]
    fn counts_above_32767_are_unsigned_as_postgresql_reads_them() {
        let types = vec![25u32; 40_000];
        let p = Parse {
            name: "",
            query: "select 1",
            param_types: types.clone(),
        };
        assert_eq!(Parse::decode(body(&p.encode())).unwrap().param_types, types);
        let values: Vec<Option<&[u8]>> = vec![Some(b"x"); 65_535];
        let b = Bind {
            portal: "",
            statement: "",
            param_formats: vec![0],
            params: values.clone(),
            result_formats: vec![],
        };
        assert_eq!(
            Bind::decode(body(&b.encode())).unwrap().params.len(),
            65_535
        );
        let oids = vec![17u32; 40_000];
        let d = parameter_description(&oids);
        assert_eq!(decode_parameter_description(body(&d)).unwrap(), oids);
    }

    #[test]
    fn frontend_messages_round_trip() {
        let p = Parse {
            name: "s1",
            query: "select $1",
            param_types: vec![25, 17],
        };
        let w = p.encode();
        len_ok(&w);
        assert_eq!(Parse::decode(body(&w)), Ok(p));
        let b = Bind {
            portal: "",
            statement: "s1",
            param_formats: vec![0, 1],
            params: vec![Some(b"abc"), None],
            result_formats: vec![1],
        };
        let w = b.encode();
        len_ok(&w);
        assert_eq!(Bind::decode(body(&w)), Ok(b));
        let d = Named {
            target: Target::Portal,
            name: "p",
        };
        assert_eq!(Named::decode(body(&d.encode(b'D'))), Ok(d));
        let e = Execute {
            portal: "p",
            max_rows: 10,
        };
        assert_eq!(Execute::decode(body(&e.encode())), Ok(e));
        assert_eq!(decode_query(body(&query("select 1"))), Ok("select 1"));
    }

    #[test]
    fn backend_messages_round_trip() {
        let f = Field {
            name: b"ssn",
            table_oid: 16384,
            attnum: 2,
            type_oid: 17,
            typlen: -1,
            typmod: -1,
            format: 1,
        };
        let w = row_description(std::slice::from_ref(&f));
        len_ok(&w);
        assert_eq!(decode_row_description(body(&w)), Ok(vec![f]));
        let w = data_row(&[Some(&b"x"[..]), None, Some(&b""[..])]);
        len_ok(&w);
        assert_eq!(
            decode_data_row(body(&w)),
            Ok(vec![Some(&b"x"[..]), None, Some(&b""[..])])
        );
        let w = parameter_description(&[23, 25]);
        assert_eq!(decode_parameter_description(body(&w)), Ok(vec![23, 25]));
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        assert!(Bind::decode(b"\0s\0\0\x02\0\0\0\0\0\x01\0\0\0\x05ab\0\0").is_err());
        assert!(decode_data_row(&[0, 1, 0, 0, 0, 9, 1]).is_err());
        assert!(decode_data_row(&[0, 1, 0xff, 0xff, 0xff, 0xff, 7]).is_err());
        assert!(decode_row_description(&[0, 1, b'a']).is_err());
        assert!(Named::decode(b"Xname\0").is_err());
        assert!(Execute::decode(b"p\0\0\0").is_err());
        assert!(Parse::decode(b"a\0b\0\xff\xff").is_err());
        for n in 0..40 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let _ = Bind::decode(&junk);
            let _ = decode_row_description(&junk);
            let _ = decode_data_row(&junk);
        }
    }

    #[test]
    fn format_code_rules() {
        assert_eq!(format_of(&[], 3), FORMAT_TEXT);
        assert_eq!(format_of(&[1], 3), FORMAT_BINARY);
        assert_eq!(format_of(&[0, 1], 1), FORMAT_BINARY);
    }
}
