//! A synthetic source: [`Generator`] makes records from a template, as
//! many as asked, as fast as asked.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::{Instant, Sleep};
use weir::stage::Streamed;

use crate::record::{Origin, Record};

/// The file name in a generated record's [`Origin`].
pub const GENERATOR_FILE: &str = "<generator>";

/// How far behind its schedule a rate-limited generator may fall (a slow
/// consumer) before it stops catching up: beyond this it starts a new
/// schedule instead of emitting the missed items in a burst.
const MAX_CATCH_UP: Duration = Duration::from_secs(1);

/// A template: item `i` (from 0) as a JSON value, or why it cannot be made.
pub type Template = Arc<dyn Fn(u64) -> Result<Value, String> + Send + Sync>;

/// Makes records `template(0)`, `template(1)`, …: `count` of them (or
/// forever), at `rate` per second (or as fast as they are taken).
///
/// Each record's origin is `<generator>` at line `i + 1`. A template that
/// fails for item `i` makes that item a [`GenerateError`], which the
/// stream yields in its place (decode it in a stage, e.g.
/// `.try_map(|r| r)`, to route it by the pipeline's error policy); the
/// generator goes on with item `i + 1`.
///
/// | setting | default |
/// |---|---|
/// | [`count`](Self::count) | `None`: no end |
/// | [`rate`](Self::rate) | `None`: as fast as possible |
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use serde_json::json;
/// use weir_io::generate::Generator;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let generator = Generator::new(|i| Ok(json!({"id": i}))).count(3);
/// let ids: Vec<u64> = generator.stream().map(|r| r.unwrap().value["id"].as_u64().unwrap()).collect().await;
/// assert_eq!(ids, [0, 1, 2]);
/// # });
/// ```
#[derive(Clone)]
pub struct Generator {
    /// How many records to make. By default, no limit.
    pub count: Option<u64>,
    /// Records per second (a positive, finite number). By default, as
    /// fast as they are taken.
    pub rate: Option<f64>,
    /// Makes item `i`.
    pub template: Template,
}

impl fmt::Debug for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("count", &self.count)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// A generated item that could not be made: which one, and why.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use weir_io::generate::Generator;
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let generator = Generator::new(|i| if i == 1 { Err("no".into()) } else { Ok(i.into()) }).count(2);
/// let items: Vec<_> = generator.stream().collect().await;
/// assert_eq!(items[1].as_ref().unwrap_err().to_string(), "generator item 1: no");
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("generator item {index}: {message}")]
pub struct GenerateError {
    /// The item's index, from 0.
    pub index: u64,
    /// What the template (or the configuration) said.
    pub message: String,
}

impl Generator {
    /// A generator of `template(i)` for `i = 0, 1, …`, with no limit and
    /// no rate.
    ///
    /// # Examples
    ///
    /// ```
    /// let generator = weir_io::generate::Generator::new(|i| Ok(serde_json::json!(i * 2)));
    /// assert_eq!((generator.count, generator.rate), (None, None));
    /// assert_eq!((generator.template)(4).unwrap(), 8);
    /// ```
    pub fn new<F>(template: F) -> Generator
    where
        F: Fn(u64) -> Result<Value, String> + Send + Sync + 'static,
    {
        Generator {
            count: None,
            rate: None,
            template: Arc::new(template),
        }
    }

    /// Makes `count` records, then ends. By default, no limit.
    ///
    /// # Examples
    ///
    /// ```
    /// let generator = weir_io::generate::Generator::new(|i| Ok(i.into())).count(10);
    /// assert_eq!(generator.count, Some(10));
    /// ```
    pub fn count(mut self, count: u64) -> Generator {
        self.count = Some(count);
        self
    }

    /// Makes `per_second` records a second, on tokio's clock. By default,
    /// as fast as they are taken.
    ///
    /// # Examples
    ///
    /// ```
    /// let generator = weir_io::generate::Generator::new(|i| Ok(i.into())).rate(100.0);
    /// assert_eq!(generator.rate, Some(100.0));
    /// ```
    pub fn rate(mut self, per_second: f64) -> Generator {
        self.rate = Some(per_second);
        self
    }

    /// Checks the settings: a rate must be a positive, finite number.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_io::generate::Generator;
    /// assert!(Generator::new(|i| Ok(i.into())).rate(5.0).healthcheck().is_ok());
    /// let err = Generator::new(|i| Ok(i.into())).rate(0.0).healthcheck().unwrap_err();
    /// assert!(err.message.contains("rate"), "{err}");
    /// ```
    pub fn healthcheck(&self) -> Result<(), GenerateError> {
        match self.rate {
            Some(rate) if !(rate.is_finite() && rate > 0.0) => Err(GenerateError {
                index: 0,
                message: format!("the rate must be a positive number of items per second, not {rate}"),
            }),
            _ => Ok(()),
        }
    }

    /// The records as a stream. With bad settings (see
    /// [`healthcheck`](Self::healthcheck)) the stream yields that error
    /// and ends.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let stream = weir_io::generate::Generator::new(|i| Ok(i.into())).count(2).stream();
    /// let records: Vec<_> = stream.collect().await;
    /// assert_eq!(records[1].as_ref().unwrap().origin.as_ref().unwrap().to_string(), "<generator>:2");
    /// # });
    /// ```
    pub fn stream(self) -> GeneratorStream {
        let invalid = self.healthcheck().err();
        let period = match (&invalid, self.rate) {
            (None, Some(rate)) => Some(rate),
            _ => None,
        };
        GeneratorStream {
            file: Arc::from(GENERATOR_FILE),
            template: self.template,
            count: if invalid.is_some() { Some(0) } else { self.count },
            rate: period,
            next: 0,
            schedule: None,
            sleep: None,
            invalid,
        }
    }

    /// The records as a [`weir::Source`] named `generator`, for
    /// [`Pipeline::merge`](weir::Pipeline::merge).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let input = weir_io::generate::Generator::new(|i| Ok(i.into())).count(3).into_source();
    /// let records = weir::Pipeline::merge([input]).try_map(|r| r).collect().await.unwrap();
    /// assert_eq!(records.len(), 3);
    /// # });
    /// ```
    pub fn into_source(self) -> Streamed<GeneratorStream> {
        Streamed::new(self.stream()).named("generator")
    }
}

/// The stream of a [`Generator`]'s records; made by [`Generator::stream`].
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let mut stream = weir_io::generate::Generator::new(|i| Ok(i.into())).count(1).stream();
/// assert_eq!(stream.next().await.unwrap().unwrap().value, 0);
/// assert!(stream.next().await.is_none());
/// # });
/// ```
pub struct GeneratorStream {
    file: Arc<str>,
    template: Template,
    count: Option<u64>,
    rate: Option<f64>,
    next: u64,
    /// When item `.1` was due: the schedule's start.
    schedule: Option<(Instant, u64)>,
    sleep: Option<Pin<Box<Sleep>>>,
    invalid: Option<GenerateError>,
}

impl fmt::Debug for GeneratorStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratorStream")
            .field("count", &self.count)
            .field("rate", &self.rate)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Stream for GeneratorStream {
    type Item = Result<Record, GenerateError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(invalid) = this.invalid.take() {
            return Poll::Ready(Some(Err(invalid)));
        }
        if this.count.is_some_and(|count| this.next >= count) {
            return Poll::Ready(None);
        }
        if let Some(rate) = this.rate {
            let now = Instant::now();
            let (start, first) = *this.schedule.get_or_insert((now, this.next));
            let due = start + Duration::from_secs_f64((this.next - first) as f64 / rate);
            if now < due {
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                sleep.as_mut().reset(due);
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            } else if now - due > MAX_CATCH_UP {
                this.schedule = Some((now, this.next));
            }
        }
        let index = this.next;
        this.next += 1;
        let item = match (this.template)(index) {
            Ok(value) => Ok(Record {
                value,
                origin: Some(Origin {
                    file: this.file.clone(),
                    line: index + 1,
                    offset: 0,
                }),
            }),
            Err(message) => Err(GenerateError { index, message }),
        };
        Poll::Ready(Some(item))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.count {
            Some(count) => {
                let left = usize::try_from(count.saturating_sub(self.next)).unwrap_or(usize::MAX);
                let left = left + usize::from(self.invalid.is_some());
                (left, Some(left))
            }
            None => (0, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_rate_spaces_items_on_the_clock() {
        let started = Instant::now();
        let stream = Generator::new(|i| Ok(i.into())).count(5).rate(10.0).stream();
        let times: Vec<Duration> = stream.map(|_| started.elapsed()).collect().await;
        let millis: Vec<u128> = times.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [0, 100, 200, 300, 400]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_generator_that_fell_far_behind_starts_a_new_schedule_instead_of_bursting() {
        let mut stream = Generator::new(|i| Ok(i.into())).rate(10.0).stream();
        let started = Instant::now();
        stream.next().await.unwrap().unwrap();
        tokio::time::advance(Duration::from_secs(5)).await; // a stalled consumer
        stream.next().await.unwrap().unwrap(); // late: emitted now, schedule reset
        let reset = started.elapsed();
        stream.next().await.unwrap().unwrap();
        assert_eq!((started.elapsed() - reset).as_millis(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_rate_items_come_without_waiting() {
        let started = Instant::now();
        let n = Generator::new(|i| Ok(i.into()))
            .count(1000)
            .stream()
            .count()
            .await;
        assert_eq!((n, started.elapsed()), (1000, Duration::ZERO));
    }

    #[tokio::test]
    async fn a_bad_rate_is_one_error_then_the_end() {
        let items: Vec<_> = Generator::new(|i| Ok(i.into()))
            .rate(f64::NAN)
            .count(3)
            .stream()
            .collect()
            .await;
        assert_eq!(items.len(), 1);
        assert!(items[0].as_ref().unwrap_err().message.contains("rate"));
    }
}
