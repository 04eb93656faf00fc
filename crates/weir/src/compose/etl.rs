//! Seed 003's ETL helper.

use super::{Piped, Stage};
use crate::pipeline::Pipeline;
use crate::stage::{IterSource, Sink, SinkStage};

/// The plan of an [`etl`] pipeline.
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use weir::compose::{self, etl, Etl};
/// use weir::Pipeline;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let loaded = Arc::new(Mutex::new(Vec::new()));
/// let l = loaded.clone();
/// let load = weir::sink_fn(move |x: u32| {
///     l.lock().unwrap().push(x);
///     async { Ok::<_, std::io::Error>(()) }
/// });
/// let p: Pipeline<(), Etl<_, _, _>> = etl(1..=3u32, compose::map("square", |x: u32| x * x), load);
/// p.run().await.unwrap();
/// assert_eq!(*loaded.lock().unwrap(), [1, 4, 9]);
/// # });
/// ```
pub type Etl<I, S, L> = SinkStage<Piped<IterSource<I>, S>, L>;

/// An extract → transform → load pipeline, ready to run: `extract` is any
/// `IntoIterator`, `transform` a [`Stage`] (compose several with `>>`),
/// `load` a [`Sink`]. Name it, set its error policy or add stages before
/// `run()` like any pipeline; for a stream source, build it by hand with
/// [`Pipeline::from_stream`] and [`Pipeline::pipe`].
///
/// # Examples
///
/// ```
/// use weir::compose::{self, etl};
/// use weir::Sink;
///
/// /// Loads rows into a Vec (a database, in real life).
/// struct Table(std::sync::Arc<std::sync::Mutex<Vec<(String, u32)>>>);
///
/// impl Sink<(String, u32)> for Table {
///     type Error = weir::BoxError;
///     async fn write(&mut self, row: (String, u32)) -> Result<(), weir::BoxError> {
///         self.0.lock().unwrap().push(row);
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let rows = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
/// let parse = compose::try_map("parse", |line: &str| -> Result<(String, u32), String> {
///     let (name, age) = line.split_once(',').ok_or("no comma")?;
///     Ok((name.to_owned(), age.parse().map_err(|_| "bad age")?))
/// });
/// let adults = compose::filter("adults", |row: &(String, u32)| row.1 >= 18);
/// let report = etl(["ann,34", "bob,12"], parse >> adults, Table(rows.clone())).run().await.unwrap();
/// assert_eq!(report.delivered, 1);
/// assert_eq!(*rows.lock().unwrap(), [("ann".to_owned(), 34)]);
/// # });
/// ```
pub fn etl<E, S, L>(extract: E, transform: S, load: L) -> Pipeline<(), Etl<E::IntoIter, S, L>>
where
    E: IntoIterator,
    E::IntoIter: Send + 'static,
    E::Item: Send + 'static,
    S: Stage<E::Item>,
    L: Sink<S::Out>,
{
    Pipeline::from_iter(extract).pipe(transform).sink(load)
}
