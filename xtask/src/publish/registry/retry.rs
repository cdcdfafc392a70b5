//! When a registry request is worth sending again: connection errors and 429/5xx answers on
//! requests that are safe to repeat (HEAD, GET, manifest PUT, and a blob upload restarted from
//! its POST), a bounded number of times with exponential back-off, honouring `Retry-After`
//! (RFC 9110 section 10.2.3; RFC 6585 section 4 for 429). The loop itself is
//! `client::Repo::retrying`; this module decides what is transient and how long to wait.
//! Past the bound the push stops with the request and its last answer: a registry that is down
//! for longer is better reported than waited for.
use std::io::ErrorKind;
use std::time::{Duration, SystemTime};

/// How often and how patiently a request is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Tries per request, the first included.
    pub tries: u32,
    /// The wait after the first failure; doubled after each further one.
    pub first_delay: Duration,
    /// The longest back-off wait.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured: a registry asking for more ends the push (waiting
    /// less than it asked would only be refused again).
    pub max_retry_after: Duration,
}

impl Default for Retry {
    /// 5 tries, waiting 1, 2, 4 and 8 s (15 s in all) unless the registry says otherwise.
    fn default() -> Retry {
        Retry {
            tries: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// A failed try that may succeed when repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transient {
    /// What the registry (or the connection) answered: `503 Service Unavailable: ...`.
    pub answer: String,
    pub retry_after: Option<Duration>,
}

/// Why a try failed.
#[derive(Debug)]
pub enum Failure {
    Transient(Transient),
    /// Not worth repeating: the error as the user should read it.
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Fatal(e)
    }
}

impl Retry {
    /// After `tries` failed tries (the last one `last`), how long to wait before the next,
    /// or why not to try again.
    pub fn next(&self, tries: u32, last: &Transient) -> Result<Duration, String> {
        if tries >= self.tries {
            return Err(format!("gave up after {tries} tries"));
        }
        if let Some(after) = last.retry_after {
            if after > self.max_retry_after {
                return Err(format!(
                    "the registry asks to retry after {} s, longer than the {} s we wait; run \
                     the push again later",
                    after.as_secs(),
                    self.max_retry_after.as_secs()
                ));
            }
            return Ok(after);
        }
        let factor = 2u32.saturating_pow(tries.saturating_sub(1));
        Ok(self.first_delay.saturating_mul(factor).min(self.max_delay))
    }
}

/// Is this HTTP status worth another try? 429 Too Many Requests and the 5xx a proxy or an
/// overloaded registry answers; not 501 Not Implemented or 505 HTTP Version Not Supported,
/// which no retry changes.
pub fn transient_status(status: u16) -> bool {
    status == 429 || ((500..600).contains(&status) && status != 501 && status != 505)
}

/// Is this transport error a connection problem a new connection may not have? Resets,
/// refusals, timeouts, a connection closed mid-answer. Not: a TLS or certificate error, an
/// unknown host, a bad URL, or an error reading our own blob (its digest check: `InvalidData`).
pub fn transient_error(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::ConnectionRefused
                | ErrorKind::BrokenPipe
                | ErrorKind::UnexpectedEof
                | ErrorKind::TimedOut
                | ErrorKind::Interrupted
                | ErrorKind::NotConnected
        ),
        ureq::Error::Timeout(_)
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_)
        | ureq::Error::BodyStalled => true,
        _ => false,
    }
}

/// `Retry-After`: delay-seconds, or an HTTP-date (how long from `now`; a date already past
/// means now). Unreadable values are ignored (back-off applies).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(retry_after: Option<u64>) -> Transient {
        Transient {
            answer: "503 Service Unavailable".into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn backs_off_exponentially_within_the_bound() {
        let r = Retry::default();
        let waits: Vec<_> = (1..5).map(|n| r.next(n, &t(None)).unwrap()).collect();
        assert_eq!(
            waits,
            [1, 2, 4, 8].map(Duration::from_secs).to_vec(),
            "1, 2, 4, 8 s"
        );
        assert!(r.next(5, &t(None)).unwrap_err().contains("after 5 tries"));
        let capped = Retry {
            tries: 20,
            ..Retry::default()
        };
        assert_eq!(capped.next(12, &t(None)).unwrap(), Duration::from_secs(30));
    }

    #[test]
    fn honours_retry_after_up_to_a_limit() {
        let r = Retry::default();
        assert_eq!(r.next(1, &t(Some(7))).unwrap(), Duration::from_secs(7));
        let e = r.next(1, &t(Some(3600))).unwrap_err();
        assert!(e.contains("3600 s"), "{e}");
        // Still bounded by the tries.
        assert!(r.next(5, &t(Some(1))).is_err());
    }

    #[test]
    fn reads_both_retry_after_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        // RFC 850 and asctime dates are HTTP-dates too (RFC 9110 section 5.6.7).
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:38 1994", now),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn which_answers_are_transient() {
        for s in [429, 500, 502, 503, 504, 599] {
            assert!(transient_status(s), "{s}");
        }
        for s in [200, 201, 400, 401, 403, 404, 409, 501, 505] {
            assert!(!transient_status(s), "{s}");
        }
        let io = |k| ureq::Error::Io(std::io::Error::from(k));
        assert!(transient_error(&io(ErrorKind::ConnectionReset)));
        assert!(transient_error(&io(ErrorKind::ConnectionRefused)));
        assert!(transient_error(&ureq::Error::ConnectionFailed));
        // A corrupt store blob read into the body: never sent again.
        assert!(!transient_error(&io(ErrorKind::InvalidData)));
        assert!(!transient_error(&ureq::Error::HostNotFound));
    }
}
