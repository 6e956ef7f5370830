//! Line numbers as a text editor shows them, for any line ending.
//!
//! The csv crate counts `\n` bytes, and a record's position is taken where the
//! previous record stopped. Its CRLF terminator ends a record at the `\r`, so
//! the `\n` is read as part of the *next* record, after that record's line was
//! taken: in a CRLF file every row was reported one line too early (a bad value
//! on line 2 blamed the header), and a file ending lines with a lone `\r` was
//! all "line 1". Python's `csv` module and spreadsheet exports write CRLF.
//!
//! [`LineCounting`] sits under the csv reader, sees every byte it reads, and
//! counts `\n`, `\r\n` and a lone `\r` as one line break each. A record's line
//! is then the line of its first byte, found from the byte offset the csv
//! crate gives (which may point at leading line breaks: the `\n` of a CRLF or
//! blank lines). For a record whose quoted field spans lines, that is the line
//! where the record starts.

use std::collections::VecDeque;
use std::io::{self, Read};

/// A reader that remembers where line breaks are, so that byte offsets can be
/// turned into line numbers; offsets must be asked for in increasing order.
///
/// Only the breaks read ahead of the last query are kept (the csv reader's
/// buffer, 64 KiB), so memory stays flat on files of any size.
pub(crate) struct LineCounting<R> {
    inner: R,
    /// Offset of the next byte to be read.
    offset: u64,
    /// Runs of consecutive `\r`/`\n` bytes not yet passed by a query: the
    /// offset of their first byte and how many line breaks they hold.
    runs: VecDeque<(u64, u64)>,
    /// The run the last byte read belongs to, if it was `\r` or `\n`.
    open: Option<(u64, u64)>,
    last_was_cr: bool,
    /// Line breaks in the runs already passed.
    passed: u64,
}

impl<R: Read> LineCounting<R> {
    pub(crate) fn new(inner: R) -> Self {
        LineCounting {
            inner,
            offset: 0,
            runs: VecDeque::new(),
            open: None,
            last_was_cr: false,
            passed: 0,
        }
    }

    /// The 1-based line of the first byte at or after `offset` that is not a
    /// line break: the line where a record whose parse began at `offset` starts.
    pub(crate) fn line_at(&mut self, offset: u64) -> u64 {
        while let Some(&(start, breaks)) = self.runs.front() {
            if start > offset {
                break;
            }
            self.passed += breaks;
            self.runs.pop_front();
        }
        let open = match self.open {
            Some((start, breaks)) if start <= offset => breaks,
            _ => 0,
        };
        1 + self.passed + open
    }

    fn scan(&mut self, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let at = self.offset + i as u64;
            match b {
                b'\r' | b'\n' => {
                    let run = self.open.get_or_insert((at, 0));
                    // The `\n` of a CRLF was counted with its `\r`.
                    if b == b'\r' || !self.last_was_cr {
                        run.1 += 1;
                    }
                    self.last_was_cr = b == b'\r';
                }
                _ => {
                    if let Some(run) = self.open.take() {
                        self.runs.push_back(run);
                    }
                    self.last_was_cr = false;
                }
            }
        }
        self.offset += bytes.len() as u64;
    }
}

impl<R: Read> Read for LineCounting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.scan(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads all of `text` in chunks of `chunk` bytes, then asks for the line
    /// of each offset in turn.
    fn lines(text: &str, chunk: usize, offsets: &[u64]) -> Vec<u64> {
        let mut r = LineCounting::new(text.as_bytes());
        let mut buf = vec![0u8; chunk];
        while r.read(&mut buf).expect("read") > 0 {}
        offsets.iter().map(|&o| r.line_at(o)).collect()
    }

    #[test]
    fn every_line_ending_counts_once() {
        // Records start at offsets 0, 4 and 8 (after "a,b" + terminator).
        for chunk in [1, 2, 3, 64] {
            assert_eq!(lines("a,b\nc,d\ne,f\n", chunk, &[0, 4, 8]), [1, 2, 3]);
            assert_eq!(lines("a,b\rc,d\re,f\r", chunk, &[0, 4, 8]), [1, 2, 3]);
            // CRLF: the csv crate's offset points at the `\n` (4, 9) or,
            // were it to stop earlier, the `\r` (3, 8).
            assert_eq!(lines("a,b\r\nc,d\r\ne,f\r\n", chunk, &[0, 4, 9]), [1, 2, 3]);
            assert_eq!(lines("a,b\r\nc,d\r\ne,f\r\n", chunk, &[0, 3, 8]), [1, 2, 3]);
        }
    }

    #[test]
    fn blank_lines_and_mixed_endings_are_counted() {
        // "a" line 1, blank lines 2 (CRLF) and 3 (LF), "b" at offset 6 on
        // line 4, then "\n\r" is two breaks: "c" at offset 9 on line 6.
        let text = "a\r\n\r\n\nb\n\rc\n";
        assert_eq!(lines(text, 2, &[0, 1, 6, 7, 9]), [1, 4, 4, 6, 6]);
    }

    #[test]
    fn a_quoted_newline_belongs_to_the_record_it_starts_in() {
        // The record at offset 4 spans lines 2-3; the next starts on line 4.
        let text = "a,b\n\"x\ny\",1\nz,2\n";
        assert_eq!(lines(text, 5, &[4, 12]), [2, 4]);
    }
}
