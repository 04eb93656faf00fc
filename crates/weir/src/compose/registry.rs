//! Named stage factories, so plugins can register stages and configs can
//! name them (seed 000's `register_processor`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::Stage;
use crate::context::Context;
use crate::error::guard;
use crate::error::{BoxError, Error, ErrorKind};

/// A type-erased [`Stage`]: what a [`Registry`] builds. Compose it with
/// `>>` and pipe it like any stage; it costs one virtual call per item.
///
/// # Examples
///
/// ```
/// use weir::compose::{self, BoxStage, Stage};
/// let mut s: BoxStage<u8, u8> = BoxStage::new(compose::map("inc", |x: u8| x + 1));
/// assert_eq!(s.name(), "inc");
/// assert_eq!(s.run_on([1]).unwrap(), [2]);
/// ```
pub struct BoxStage<In, Out>(Box<dyn Stage<In, Out = Out>>);

impl<In, Out> BoxStage<In, Out> {
    /// Erases `stage`'s type.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, BoxStage, Stage};
    /// // Two stages of different types, one type once boxed.
    /// let stages: Vec<BoxStage<i32, i32>> = vec![
    ///     BoxStage::new(compose::map("neg", |x: i32| -x)),
    ///     BoxStage::new(compose::filter("pos", |x: &i32| *x > 0)),
    /// ];
    /// let out: Vec<_> = stages.into_iter().map(|mut s| s.run_on([-1, 2]).unwrap()).collect();
    /// assert_eq!(out, [vec![1, -2], vec![2]]);
    /// ```
    pub fn new<S: Stage<In, Out = Out>>(stage: S) -> BoxStage<In, Out> {
        BoxStage(Box::new(stage))
    }
}

impl<In: 'static, Out: Send + 'static> fmt::Debug for BoxStage<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxStage").field(&self.0.name()).finish()
    }
}

impl<In: 'static, Out: Send + 'static> Stage<In> for BoxStage<In, Out> {
    type Out = Out;

    fn name(&self) -> &str {
        self.0.name()
    }

    fn process(&mut self, item: In, ctx: &Context, out: &mut Vec<Out>) -> Result<(), BoxError> {
        self.0.process(item, ctx, out)
    }

    fn flush(&mut self, ctx: &Context, out: &mut Vec<Out>) -> Result<(), BoxError> {
        self.0.flush(ctx, out)
    }

    fn holds(&self) -> bool {
        self.0.holds()
    }

    fn kept(&self) -> bool {
        self.0.kept()
    }
}

type Factory<T> = Arc<dyn Fn(&serde_json::Value) -> Result<BoxStage<T, T>, BoxError> + Send + Sync>;

/// Maps stage type names to factories that build a stage from a JSON
/// config: plugins register their stages here, and pipelines described in
/// configuration files name them. The item type `T` is the same in and
/// out (for configured pipelines, usually `serde_json::Value`).
///
/// Registering a name twice is an error, and so is building an unknown
/// name (the error lists the known ones). A factory that fails or panics
/// gives an error naming the stage type; it never takes the caller down.
///
/// # Examples
///
/// ```
/// use serde_json::{json, Value};
/// use weir::compose::{self, BoxStage, Registry, Stage};
///
/// let mut registry: Registry<Value> = Registry::new();
/// registry
///     .register("add", |config: &Value| {
///         let n = config["n"].as_i64().ok_or("`n` must be an integer")?;
///         Ok(BoxStage::new(compose::map("add", move |v: Value| json!(v.as_i64().unwrap_or(0) + n))))
///     })
///     .unwrap();
///
/// let mut add = registry.build("add", &json!({"n": 2})).unwrap();
/// assert_eq!(add.run_on([json!(1)]).unwrap(), [json!(3)]);
/// let err = registry.build("add", &json!({})).unwrap_err();
/// assert_eq!(err.to_string(), "stage type `add`: `n` must be an integer");
/// assert!(registry.build("nope", &json!({})).unwrap_err().to_string().contains("known: add"));
/// ```
pub struct Registry<T> {
    factories: BTreeMap<String, Factory<T>>,
}

impl<T> Default for Registry<T> {
    fn default() -> Registry<T> {
        Registry {
            factories: BTreeMap::new(),
        }
    }
}

impl<T> fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&String> = self.factories.keys().collect();
        f.debug_struct("Registry").field("stages", &names).finish()
    }
}

impl<T: 'static> Registry<T> {
    /// An empty registry.
    ///
    /// # Examples
    ///
    /// ```
    /// let registry: weir::compose::Registry<serde_json::Value> = weir::compose::Registry::new();
    /// assert!(registry.names().is_empty());
    /// assert!(!registry.contains("map"));
    /// ```
    pub fn new() -> Registry<T> {
        Registry::default()
    }

    /// Registers `factory` under `name`. Fails if the name is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, BoxStage, Registry};
    /// let mut r: Registry<u8> = Registry::new();
    /// let id = |_: &serde_json::Value| Ok(BoxStage::new(compose::map("id", |x: u8| x)));
    /// r.register("id", id).unwrap();
    /// assert!(r.register("id", id).is_err());
    /// ```
    pub fn register<F>(&mut self, name: impl Into<String>, factory: F) -> Result<(), Error>
    where
        F: Fn(&serde_json::Value) -> Result<BoxStage<T, T>, BoxError> + Send + Sync + 'static,
    {
        let name = name.into();
        if self.factories.contains_key(&name) {
            return Err(Error::new(
                ErrorKind::Config,
                format!("stage type `{name}` is already registered"),
            ));
        }
        self.factories.insert(name, Arc::new(factory));
        Ok(())
    }

    /// Builds a stage of type `name` from `config`.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde_json::{json, Value};
    /// use weir::compose::{self, BoxStage, Registry};
    /// use weir::ErrorKind;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut registry: Registry<Value> = Registry::new();
    /// registry
    ///     .register("tag", |config: &Value| {
    ///         let key = config["key"].as_str().ok_or("`key` must be a string")?.to_owned();
    ///         Ok(BoxStage::new(compose::map("tag", move |mut v: Value| {
    ///             v[key.as_str()] = json!(true);
    ///             v
    ///         })))
    ///     })
    ///     .unwrap();
    /// // From a configuration file, say:
    /// let tag = registry.build("tag", &json!({"key": "seen"})).unwrap();
    /// let out = weir::Pipeline::from_iter([json!({"id": 1})]).pipe(tag).collect().await.unwrap();
    /// assert_eq!(out, [json!({"id": 1, "seen": true})]);
    ///
    /// let err = registry.build("untag", &json!({})).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// assert_eq!(err.to_string(), "unknown stage type `untag` (known: tag)");
    /// # });
    /// ```
    pub fn build(&self, name: &str, config: &serde_json::Value) -> Result<BoxStage<T, T>, Error> {
        let Some(factory) = self.factories.get(name) else {
            return Err(Error::new(
                ErrorKind::Config,
                format!("unknown stage type `{name}` (known: {})", self.names().join(", ")),
            ));
        };
        match guard(|| factory(config)) {
            Ok(Ok(stage)) => Ok(stage),
            Ok(Err(e)) => Err(Error::new(ErrorKind::Config, format!("stage type `{name}`: {e}"))),
            Err(panic) => Err(Error::new(
                ErrorKind::Config,
                format!("stage type `{name}`: the factory panicked: {}", panic.message()),
            )),
        }
    }

    /// Whether `name` is registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, BoxStage, Registry};
    /// let mut r: Registry<u8> = Registry::new();
    /// r.register("id", |_: &serde_json::Value| Ok(BoxStage::new(compose::map("id", |x: u8| x)))).unwrap();
    /// assert!(r.contains("id"));
    /// assert!(!r.contains("ID"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// The registered names, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::compose::{self, BoxStage, Registry};
    /// let mut r: Registry<u8> = Registry::new();
    /// for name in ["zero", "inc", "dec"] {
    ///     r.register(name, |_: &serde_json::Value| Ok(BoxStage::new(compose::map("id", |x: u8| x)))).unwrap();
    /// }
    /// assert_eq!(r.names(), ["dec", "inc", "zero"]);
    /// ```
    pub fn names(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose;

    #[test]
    fn a_panicking_factory_is_an_error() {
        let mut r: Registry<u8> = Registry::new();
        r.register(
            "boom",
            |_: &serde_json::Value| -> Result<BoxStage<u8, u8>, BoxError> { panic!("bad plugin") },
        )
        .unwrap();
        r.register("id", |_: &serde_json::Value| {
            Ok(BoxStage::new(compose::map("id", |x: u8| x)))
        })
        .unwrap();
        let e = r.build("boom", &serde_json::Value::Null).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("the factory panicked: bad plugin"), "{e}");
        assert!(
            r.build("id", &serde_json::Value::Null).is_ok(),
            "the others still work"
        );
        assert_eq!(r.names(), ["boom", "id"]);
        assert!(r.contains("id") && !r.contains("x"));
    }
}
