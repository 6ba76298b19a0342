//! COPY data streams (sans-IO): the rows of `COPY … FROM STDIN` / `COPY … TO STDOUT` in text,
//! CSV or binary format, split into fields as PostgreSQL splits them, with chosen fields
//! replaced and every other byte passed on unchanged.
//!
//! [`CopyStream`] takes CopyData payloads as they come (a row may span several, several rows
//! may share one), hands each mapped field's value (unescaped or unquoted; `None` for NULL) to
//! a callback, and re-encodes what the callback returns in the same format. Only complete rows
//! are emitted; the rest waits for the next payload or [`CopyStream::finish`]. A failed call
//! leaves the stream as it was before it (so the same payload can be fed again). The header
//! line (`HEADER`), the end-of-data marker `\.` and everything after it pass through.

mod binary;
mod csv;
mod text;

/// The format of a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Csv,
    Binary,
}

/// The options of a COPY that shape its data (PostgreSQL's defaults per format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: Format,
    pub delimiter: u8,
    /// The NULL marker (`\N` in text, empty in CSV).
    pub null: Vec<u8>,
    pub quote: u8,
    pub escape: u8,
    /// The first line is a header.
    pub header: bool,
}

impl CopyOptions {
    /// PostgreSQL's defaults for `format`.
    pub fn new(format: Format) -> Self {
        let csv = format == Format::Csv;
        CopyOptions {
            format,
            delimiter: if csv { b',' } else { b'\t' },
            null: if csv { Vec::new() } else { b"\\N".to_vec() },
            quote: b'"',
            escape: b'"',
            header: false,
        }
    }
}

/// A COPY stream could not be transformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyError<E> {
    /// The data is not valid COPY data of its format (SQLSTATE 22P04).
    Malformed(&'static str),
    /// The callback refused a value.
    Value(E),
}

/// One field value: `None` is NULL.
pub type Field<'a> = Option<&'a [u8]>;

/// The callback: field index and value in, replacement value out.
pub type MapFn<'m, E> = dyn FnMut(usize, Field<'_>) -> Result<Option<Vec<u8>>, E> + 'm;

/// Most bytes one row may take (PostgreSQL's own limit on a COPY line is 1 GB).
const MAX_ROW: usize = 1 << 30;

/// A COPY stream in one direction.
#[derive(Debug)]
pub struct CopyStream {
    opts: CopyOptions,
    /// Which fields (by position) go through the callback.
    mapped: Vec<bool>,
    buf: Vec<u8>,
    /// Where the search for the end of the first buffered row resumes, and the scanner's state
    /// there (text: after a backslash; CSV: inside quotes).
    scanned: usize,
    scan_state: bool,
    /// The header line (or, binary, the file header) has been passed on.
    started: bool,
    /// The end-of-data marker (or binary trailer) has been seen.
    ended: bool,
}

/// The stream state a failed call restores.
struct Saved {
    len: usize,
    scanned: usize,
    scan_state: bool,
}

impl CopyStream {
    /// A stream with `opts` whose fields at the positions where `mapped` is true are mapped.
    pub fn new(opts: CopyOptions, mapped: Vec<bool>) -> Self {
        let started = !opts.header && opts.format != Format::Binary;
        CopyStream {
            opts,
            mapped,
            buf: Vec::new(),
            scanned: 0,
            scan_state: false,
            started,
            ended: false,
        }
    }

    /// Appends `data` and returns the transformed bytes of every row it completes.
    pub fn feed<E>(
        &mut self,
        data: &[u8],
        map: &mut MapFn<'_, E>,
    ) -> Result<Vec<u8>, CopyError<E>> {
        let saved = Saved {
            len: self.buf.len(),
            scanned: self.scanned,
            scan_state: self.scan_state,
        };
        if self.buf.len() > MAX_ROW && !self.ended {
            return Err(CopyError::Malformed("COPY row too long"));
        }
        self.buf.extend_from_slice(data);
        self.drain(map, false).inspect_err(|_| self.restore(&saved))
    }

    /// The end of the data: transforms a last row that has no line ending.
    pub fn finish<E>(&mut self, map: &mut MapFn<'_, E>) -> Result<Vec<u8>, CopyError<E>> {
        let saved = Saved {
            len: self.buf.len(),
            scanned: self.scanned,
            scan_state: self.scan_state,
        };
        let out = self
            .drain(map, true)
            .inspect_err(|_| self.restore(&saved))?;
        if !self.buf.is_empty() && !self.ended {
            self.restore(&saved);
            return Err(CopyError::Malformed("COPY data ends inside a row"));
        }
        Ok(out)
    }

    fn restore(&mut self, s: &Saved) {
        self.buf.truncate(s.len);
        self.scanned = s.scanned;
        self.scan_state = s.scan_state;
    }

    /// Transforms every complete row at the front of the buffer (at `end`, also a last row
    /// without a line ending); the stream changes only when the whole call succeeds.
    fn drain<E>(&mut self, map: &mut MapFn<'_, E>, end: bool) -> Result<Vec<u8>, CopyError<E>> {
        let mut out = Vec::with_capacity(self.buf.len() + self.buf.len() / 2);
        let (mut pos, mut started, mut ended) = (0, self.started, self.ended);
        let (mut scanned, mut state) = (self.scanned, self.scan_state);
        while pos < self.buf.len() {
            let rest = &self.buf[pos..];
            if ended {
                out.extend_from_slice(rest);
                pos = self.buf.len();
                break;
            }
            if self.opts.format == Format::Binary {
                let step = if started {
                    binary::row(rest, &self.mapped, map, &mut out)?
                } else {
                    binary::header(rest)?.inspect(|&(n, _)| out.extend_from_slice(&rest[..n]))
                };
                let Some((len, last)) = step else { break };
                (started, ended) = (true, last);
                pos += len;
                continue;
            }
            let found = if self.opts.format == Format::Text {
                text::row_end(rest, scanned - pos, &mut state)
            } else {
                csv::row_end(rest, scanned - pos, &mut state, &self.opts)
            };
            let len = match found {
                Ok(n) => n,
                Err(_) if end && !state => rest.len(),
                Err(stopped) => {
                    scanned = pos + stopped;
                    break;
                }
            };
            let row = &rest[..len];
            let (body, eol) = split_eol(row);
            if !started || body == b"\\." {
                // The header line, or the end-of-data marker.
                ended = started;
                out.extend_from_slice(row);
            } else {
                if self.opts.format == Format::Text {
                    text::transform(body, &self.opts, &self.mapped, map, &mut out)?;
                } else {
                    csv::transform(body, &self.opts, &self.mapped, map, &mut out)?;
                }
                out.extend_from_slice(eol);
            }
            started = true;
            pos += len;
            (scanned, state) = (pos, false);
        }
        self.buf.drain(..pos);
        self.scanned = scanned.saturating_sub(pos);
        self.scan_state = state;
        self.started = started;
        self.ended = ended;
        Ok(out)
    }
}

/// A row's body and its line ending (`\n`, `\r\n` or none).
fn split_eol(row: &[u8]) -> (&[u8], &[u8]) {
    let n = if row.ends_with(b"\r\n") {
        2
    } else {
        usize::from(row.ends_with(b"\n"))
    };
    row.split_at(row.len() - n)
}

#[cfg(test)]
mod tests;
