//! Where a run's tasks go on the runtime's worker threads.
//!
//! A pipeline split into tasks (by [`boundary`](crate::Pipeline::boundary),
//! `then`, sinks, …) hands chunks from task to task. When the two tasks run
//! on different cores, every hand-off wakes the other core and moves the
//! chunk's cache lines across. For stages that do real work per chunk that
//! is nothing, and the cores share the work; for cheap stages it costs
//! more than the work itself, and such a pipeline ran slower on two
//! workers than on one thread (the `scaling` and `chain` benchmarks;
//! figures in docs/BENCHMARKS.md).
//!
//! So by default ([`Placement::Adaptive`]) a run's tasks start together in
//! one tokio task, a [`Group`] polling them in turn, so a chunk handed from
//! one to the next stays on the core that made it. The group times each
//! poll of each member; a member whose polls keep taking longer than
//! [`HEAVY_POLL`] (a chunk's worth of real work) moves to a tokio task of
//! its own, which the runtime's other workers can take: heavy stages
//! spread, cheap ones stay together. A member never moves back.
//!
//! Failures keep their meaning: a member that panics takes its group's
//! task down with the same panic (the supervisor sees it as before and
//! aborts the run), and a moved member's panic is raised again in the
//! group. Dropping the group (an abort) drops every member still in it and
//! aborts the moved ones.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::task::AtomicWaker;
use tokio::task::JoinSet;

use super::Task;

/// How a run places its tasks on the runtime's worker threads. Set with
/// [`PipelineBuilder::placement`](crate::PipelineBuilder::placement).
///
/// It changes only where work runs, never what a run does: the same items
/// reach the same stages in the same order under each.
///
/// # Examples
///
/// ```
/// use weir::Placement;
/// assert_eq!(Placement::default(), Placement::Adaptive);
/// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap().block_on(async {
/// for placement in [Placement::Adaptive, Placement::Spread, Placement::Together] {
///     let sum = weir::PipelineBuilder::new()
///         .placement(placement)
///         .from_iter(0..1000u64)
///         .map(|x| x * 2)
///         .boundary()
///         .fold(0, |a, x| a + x)
///         .await
///         .unwrap();
///     assert_eq!(sum, 999_000);
/// }
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Placement {
    /// The default: the run's tasks start together on one worker; a task
    /// whose chunks take long (stages doing real work: a run of polls of
    /// 25 µs or more, a millisecond together) moves to a task of its own,
    /// which other workers can run. Cheap pipelines stay on one core, heavy ones spread.
    #[default]
    Adaptive,
    /// Every task of the run is a tokio task of its own from the start,
    /// as the runtime schedules them: what weir did before `Adaptive`.
    /// Right when every stage is known to be heavy, or to compare.
    Spread,
    /// All of the run's tasks in one tokio task, never moved: the run
    /// uses one core at a time, as on a current-thread runtime, and its
    /// chunks never change core. Right for cheap pipelines beside other
    /// work that needs the other cores.
    Together,
}

/// A poll at least this long is a long one; a member moves to a task of
/// its own after [`STREAK`] long polls in a row that took [`HEAVY_STREAK`]
/// together.
///
/// Handing a chunk to a task on another core costs a small fraction of
/// this (the `scaling` benchmark's cheap rows), so a member this heavy
/// gains a core for a few percent. A run of long polls adding up to a
/// millisecond is asked for, not one long poll: a cheap member's poll that
/// the operating system interrupted, or the first polls of a run (cold
/// caches, first allocations), must not move it; a wrong move costs what
/// `Spread` pays for every hand-off after it. The `scaling` benchmark's
/// medium rows (a chunk's work a few times this) move after a few polls,
/// its heavy rows after two.
const HEAVY_POLL: Duration = Duration::from_micros(25);

/// Long polls in a row that move a member, at least.
const STREAK: u8 = 2;
/// The least time a run of long polls must add up to.
const HEAVY_STREAK: Duration = Duration::from_millis(1);

/// Rounds over the woken members in one poll of a group before it yields
/// to the runtime (as any task that has worked a while should): enough
/// cheap chunk hand-offs that the yield's cost is lost among them.
const ROUNDS: u32 = 64;

/// Whether the run was aborted: a group then drops its members at once,
/// as aborting their own tasks would.
pub(crate) type Aborted = Box<dyn Fn() -> bool + Send>;

/// Spawns `tasks` onto `set` as `placement` says.
pub(crate) fn spawn_all(set: &mut JoinSet<()>, tasks: Vec<Task>, placement: Placement, aborted: Aborted) {
    // One worker: nowhere to move to.
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let moving = match placement {
        _ if tasks.len() <= 1 => None,
        Placement::Spread => None,
        Placement::Adaptive => Some(workers > 1),
        Placement::Together => Some(false),
    };
    match moving {
        None => tasks.into_iter().for_each(|t| drop(set.spawn(t))),
        Some(moving) => drop(set.spawn(Group::new(tasks, moving, aborted))),
    }
}

/// Tasks polled in turn inside one tokio task; those that prove heavy
/// (when `moving`) leave for tokio tasks of their own.
///
/// Why not just a `FuturesUnordered` spawned as a task: a member woken by
/// another member (a chunk handed on) wakes the group while it runs, which
/// a multi-thread runtime takes as a yield: it queues the group again and
/// wakes an idle worker to steal it: a futex call per few chunks, which
/// made cheap stages slower on two workers than on one thread (the
/// `scaling` benchmark). So a wake that comes while the group runs only
/// marks it ([`Wake`]); the group goes round again, up to [`ROUNDS`].
struct Group {
    here: FuturesUnordered<Member>,
    moved: JoinSet<()>,
    wake: Arc<Wake>,
    waker: Waker,
    aborted: Aborted,
}

impl Group {
    fn new(tasks: Vec<Task>, moving: bool, aborted: Aborted) -> Group {
        let wake = Arc::new(Wake {
            state: AtomicU8::new(IDLE),
            parent: AtomicWaker::new(),
        });
        Group {
            here: tasks.into_iter().map(|task| Member::new(task, moving)).collect(),
            moved: JoinSet::new(),
            waker: Waker::from(wake.clone()),
            wake,
            aborted,
        }
    }
}

impl Future for Group {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.wake.parent.register(cx.waker());
        this.wake.state.store(RUNNING, Ordering::Release);
        let mut inner = Context::from_waker(&this.waker);
        for _ in 0..ROUNDS {
            if (this.aborted)() && !this.here.is_empty() {
                // Not one more step: a member woken by the abort (a source
                // that stops pulling) would end its stream, and the stages
                // after it would deliver what they hold, where an abort
                // drops it. Members still here go now; moved ones are
                // aborted, and waited for below so that their items are
                // finalized before the run reports.
                this.here.clear();
                this.moved.abort_all();
            }
            // `FuturesUnordered` polls only the members that were woken.
            while let Poll::Ready(Some(left)) = this.here.poll_next_unpin(&mut inner) {
                if let Some(task) = left {
                    this.moved.spawn(task);
                }
            }
            while let Poll::Ready(Some(joined)) = this.moved.poll_join_next(cx) {
                if let Err(e) = joined {
                    if e.is_panic() {
                        // The supervisor sees the member's own panic.
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            }
            if this.here.is_empty() && this.moved.is_empty() {
                return Poll::Ready(());
            }
            // Woken while running: round again. Otherwise go idle, unless a
            // wake came in between.
            if this.wake.state.swap(RUNNING, Ordering::AcqRel) == WOKEN {
                continue;
            }
            if this
                .wake
                .state
                .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Poll::Pending;
            }
        }
        // Worked a while: let the runtime run its other tasks first.
        this.wake.state.store(IDLE, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const WOKEN: u8 = 2;

/// The waker a group gives its members: while the group runs, a wake only
/// marks it `WOKEN` (the group goes round again); while it is idle, a wake
/// wakes the group's task.
struct Wake {
    state: AtomicU8,
    parent: AtomicWaker,
}

impl std::task::Wake for Wake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self
            .state
            .compare_exchange(RUNNING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(WOKEN) => {}
            Err(_) => self.parent.wake(),
        }
    }
}

/// One task in a [`Group`], timing its polls when it may move.
struct Member {
    task: Option<Task>,
    moving: bool,
    /// Long polls in a row.
    streak: u8,
    /// Their time.
    spent: Duration,
}

impl Member {
    fn new(task: Task, moving: bool) -> Member {
        Member {
            task: Some(task),
            moving,
            streak: 0,
            spent: Duration::ZERO,
        }
    }
}

impl Future for Member {
    /// `None`: the task ended; `Some`: it is heavy, spawn it on its own.
    type Output = Option<Task>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Task>> {
        let this = &mut *self;
        let task = this.task.as_mut().expect("a group member polled after it ended");
        if !this.moving {
            return task.as_mut().poll(cx).map(|()| None);
        }
        let began = Instant::now();
        if task.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        let took = began.elapsed();
        if took < HEAVY_POLL {
            (this.streak, this.spent) = (0, Duration::ZERO);
            return Poll::Pending;
        }
        this.streak = this.streak.saturating_add(1);
        this.spent += took;
        if this.streak < STREAK || this.spent < HEAVY_STREAK {
            return Poll::Pending;
        }
        // Its waker is the group's; the new task's first poll registers
        // its own with whatever it waits on.
        Poll::Ready(this.task.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The heavy members' work per poll: two such polls move a member.
    const HEAVY: Duration = Duration::from_micros(600);

    fn spin(work: Duration) {
        let began = Instant::now();
        while began.elapsed() < work {
            std::hint::spin_loop();
        }
    }

    /// A task that polls `n` times (waking itself), spinning `work(i)` on
    /// poll `i`, and records the tokio task it ran in on each poll.
    fn member(
        n: usize,
        work: impl Fn(usize) -> Duration + Send + 'static,
        seen: Arc<Mutex<Vec<tokio::task::Id>>>,
    ) -> Task {
        Box::pin(async move {
            for i in 0..n {
                spin(work(i));
                seen.lock().unwrap().push(tokio::task::id());
                tokio::task::yield_now().await;
            }
        })
    }

    async fn tasks_seen(placement: Placement, works: &[fn(usize) -> Duration]) -> Vec<Vec<tokio::task::Id>> {
        let seen: Vec<_> = works.iter().map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
        let tasks = works
            .iter()
            .zip(&seen)
            .map(|(&w, s)| member(24, w, s.clone()))
            .collect();
        let mut set = JoinSet::new();
        spawn_all(&mut set, tasks, placement, Box::new(|| false));
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        seen.iter().map(|s| s.lock().unwrap().clone()).collect()
    }

    fn distinct(ids: &[tokio::task::Id]) -> usize {
        let mut v = ids.to_vec();
        v.sort();
        v.dedup();
        v.len()
    }

    fn cheap(_: usize) -> Duration {
        Duration::ZERO
    }

    fn heavy(_: usize) -> Duration {
        HEAVY
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_heavy_member_moves_to_a_task_of_its_own_and_cheap_ones_stay() {
        let seen = tasks_seen(Placement::Adaptive, &[cheap, heavy, cheap]).await;
        let (cheap_a, heavy, cheap_b) = (&seen[0], &seen[1], &seen[2]);
        assert_eq!(distinct(cheap_a), 1, "a cheap member stays in its group");
        assert_eq!(cheap_a[0], cheap_b[0], "cheap members share the group's task");
        assert_eq!(distinct(heavy), 2, "the heavy member moved once");
        assert_eq!(heavy[0], cheap_a[0], "it started in the group");
        let moved_after = heavy.iter().position(|&id| id != heavy[0]).unwrap();
        assert_eq!(
            moved_after,
            usize::from(STREAK),
            "it moved after {STREAK} long polls"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cheap_member_with_a_few_long_polls_stays() {
        // One poll interrupted for long, and a run of long polls shorter
        // than `HEAVY_STREAK` together: neither moves it.
        fn interrupted(i: usize) -> Duration {
            match i {
                3 => HEAVY_STREAK * 2,
                10..=13 => HEAVY_POLL * 2,
                _ => Duration::ZERO,
            }
        }
        let seen = tasks_seen(Placement::Adaptive, &[cheap, interrupted]).await;
        assert!(
            seen.iter().all(|s| distinct(s) == 1 && s[0] == seen[0][0]),
            "one task throughout"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn together_never_moves_and_spread_starts_apart() {
        let seen = tasks_seen(Placement::Together, &[cheap, heavy]).await;
        assert!(
            seen.iter().all(|s| distinct(s) == 1 && s[0] == seen[0][0]),
            "one task throughout"
        );
        let seen = tasks_seen(Placement::Spread, &[cheap, cheap]).await;
        assert!(seen.iter().all(|s| distinct(s) == 1), "each in its own task");
        assert_ne!(seen[0][0], seen[1][0], "two tasks");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_worker_keeps_a_heavy_member_in_its_group() {
        let seen = tasks_seen(Placement::Adaptive, &[cheap, heavy]).await;
        assert!(seen.iter().all(|s| distinct(s) == 1 && s[0] == seen[0][0]));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_abort_drops_the_members_before_their_next_step() {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        let abort = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        struct OnDrop(Arc<AtomicBool>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let (a, s) = (abort.clone(), steps.clone());
        let stepping: Task = Box::pin(async move {
            for i in 0.. {
                s.fetch_add(1, Ordering::SeqCst);
                if i == 3 {
                    a.store(true, Ordering::SeqCst);
                }
                tokio::task::yield_now().await;
            }
        });
        let guard = OnDrop(dropped.clone());
        let waiting: Task = Box::pin(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        let mut set = JoinSet::new();
        let flag = abort.clone();
        spawn_all(
            &mut set,
            vec![stepping, waiting],
            Placement::Together,
            Box::new(move || flag.load(Ordering::SeqCst)),
        );
        set.join_next().await.unwrap().unwrap();
        assert_eq!(steps.load(Ordering::SeqCst), 4, "no step after the abort");
        assert!(dropped.load(Ordering::SeqCst), "the waiting member was dropped");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_moved_members_panic_reaches_the_group() {
        let task: Task = Box::pin(async {
            for i in 0.. {
                spin(HEAVY);
                assert!(i < 4, "broke after moving, at poll {i}");
                tokio::task::yield_now().await;
            }
        });
        let idle: Task = Box::pin(std::future::pending());
        let mut set = JoinSet::new();
        spawn_all(
            &mut set,
            vec![task, idle],
            Placement::Adaptive,
            Box::new(|| false),
        );
        let e = set.join_next().await.unwrap().unwrap_err();
        assert!(e.is_panic());
        let message = e.into_panic().downcast::<String>().unwrap();
        assert!(message.contains("broke after moving"), "{message}");
    }
}
