//! Reading JSON lines in bounded pieces: a line that is not UTF-8 or longer than
//! [`MAX_LINE`](super::MAX_LINE) is reported as such and skipped, never buffered whole, so
//! one bad writer cannot stop a node or grow its memory.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line read from a client.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// The line was not valid UTF-8.
    NotUtf8,
    /// The line was longer than the bound; its bytes were skipped up to its newline.
    TooLong,
}

/// Cancellation-safe: the line in progress lives in the reader, not in the future, so a
/// `next_line` dropped by `select!` loses nothing and the next call carries on with the line.
pub struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
    /// The line in progress is over the bound: its bytes are being skipped.
    too_long: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            buf: Vec::new(),
            too_long: false,
        }
    }

    /// The next line (without its `\n` or `\r\n`), or `None` at end of input. A last line
    /// without a newline counts. Errors are IO errors of the reader (the client is gone).
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                // End of input.
                if std::mem::take(&mut self.too_long) {
                    return Ok(Some(Line::TooLong));
                }
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(self.finish()));
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |at| at + 1);
            if !self.too_long {
                let piece = &available[..newline.unwrap_or(available.len())];
                if self.buf.len() + piece.len() > self.max {
                    self.too_long = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(piece);
                }
            }
            // No await between taking the bytes into `buf` and consuming them.
            self.inner.consume(take);
            if newline.is_some() {
                if std::mem::take(&mut self.too_long) {
                    return Ok(Some(Line::TooLong));
                }
                return Ok(Some(self.finish()));
            }
        }
    }

    fn finish(&mut self) -> Line {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        match String::from_utf8(std::mem::take(&mut self.buf)) {
            Ok(text) => Line::Text(text),
            Err(_) => Line::NotUtf8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], max: usize) -> Vec<Line> {
        // A tiny buffer, so lines arrive in many pieces.
        let reader = tokio::io::BufReader::with_capacity(3, input);
        let mut lines = LineReader::new(reader, max);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn lines_bad_bytes_and_long_lines_each_count_once() {
        let input = b"{\"a\":1}\n\xff\xfe\n0123456789abcdef\nok\r\nlast";
        assert_eq!(
            all(input, 10).await,
            vec![
                Line::Text("{\"a\":1}".into()),
                Line::NotUtf8,
                Line::TooLong,
                Line::Text("ok".into()),
                Line::Text("last".into()),
            ]
        );
    }

    #[tokio::test]
    async fn a_read_dropped_mid_line_loses_nothing() {
        use tokio::io::AsyncWriteExt;
        let (mut writer, reader) = tokio::io::duplex(64);
        let mut lines = LineReader::new(tokio::io::BufReader::new(reader), 100);
        writer.write_all(b"{\"cmd\":").await.unwrap();
        // `select!` drops the read when another branch wins while half a line is in.
        let dropped =
            tokio::time::timeout(std::time::Duration::from_millis(20), lines.next_line()).await;
        assert!(dropped.is_err());
        writer.write_all(b"\"peers\"}\n").await.unwrap();
        assert_eq!(
            lines.next_line().await.unwrap(),
            Some(Line::Text("{\"cmd\":\"peers\"}".into()))
        );
    }

    #[tokio::test]
    async fn a_long_line_at_the_end_is_reported() {
        assert_eq!(all(b"0123456789abcdef", 10).await, vec![Line::TooLong]);
        assert_eq!(all(b"", 10).await, vec![]);
        assert_eq!(
            all(b"\n", 10).await,
            vec![Line::Text(String::new())],
            "an empty line is a line"
        );
    }
}
