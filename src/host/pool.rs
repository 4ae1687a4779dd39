//! One check per node, a bounded number at a time, each within its own time.
//!
//! A node's check holds a thread and several ssh processes (the engine's answers, the records,
//! the api's log) for as long as the node takes to answer. Started all at once, a thousand
//! nodes would be thousands of processes on the host at the same moment; so at most `jobs`
//! nodes are checked at once, and each gets its whole time from when its own check starts.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How one item's check ended.
#[derive(Debug)]
pub enum Ended<T> {
    Done(T),
    /// The check panicked (a bug): never a verdict.
    Panicked,
    /// Still running `grace` after its deadline: abandoned, its thread left to end on its own.
    Overdue,
}

/// A moment's grace past a check's deadline, for one that is writing its answer.
const GRACE: Duration = Duration::from_millis(500);

enum Event<T> {
    Started(usize, Instant),
    Finished(usize, std::thread::Result<T>),
}

/// Runs `check(item, deadline)` on every item, at most `jobs` at a time, each with `limit` from
/// its own start, and returns how each ended, in the items' order. A check still running past
/// its deadline (and the grace) is abandoned, and another worker takes its place, so a stalled
/// node never holds back the ones after it.
pub fn each_bounded<I, T, F>(items: Vec<I>, jobs: usize, limit: Duration, check: F) -> Vec<Ended<T>>
where
    I: Send + Sync + 'static,
    T: Send + 'static,
    F: Fn(&I, Instant) -> T + Send + Sync + 'static,
{
    let count = items.len();
    let shared = Arc::new((items, check, AtomicUsize::new(0)));
    let (events, received) = mpsc::channel();
    let worker = || {
        let (shared, events) = (shared.clone(), events.clone());
        std::thread::spawn(move || {
            let (items, check, next) = &*shared;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else { break };
                let deadline = Instant::now() + limit;
                if events.send(Event::Started(index, deadline)).is_err() {
                    break;
                }
                let outcome = catch_unwind(AssertUnwindSafe(|| check(item, deadline)));
                if events.send(Event::Finished(index, outcome)).is_err() {
                    break;
                }
            }
        });
    };
    for _ in 0..jobs.clamp(1, count.max(1)) {
        worker();
    }
    let mut ended: Vec<Option<Ended<T>>> = (0..count).map(|_| None).collect();
    let mut running: Vec<(usize, Instant)> = Vec::new();
    let mut left = count;
    while left > 0 {
        let wait = running
            .iter()
            .map(|(_, deadline)| *deadline + GRACE)
            .min()
            .map_or(limit + GRACE, |due| {
                due.saturating_duration_since(Instant::now())
            });
        match received.recv_timeout(wait) {
            Ok(Event::Started(index, deadline)) => running.push((index, deadline)),
            Ok(Event::Finished(index, outcome)) => {
                running.retain(|(i, _)| *i != index);
                if ended[index].is_none() {
                    ended[index] = Some(match outcome {
                        Ok(value) => Ended::Done(value),
                        Err(_) => Ended::Panicked,
                    });
                    left -= 1;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                let (overdue, still): (Vec<_>, Vec<_>) = running
                    .into_iter()
                    .partition(|(_, deadline)| *deadline + GRACE <= now);
                running = still;
                for (index, _) in overdue {
                    ended[index] = Some(Ended::Overdue);
                    left -= 1;
                    worker();
                }
            }
            // Every worker holds a sender, and so does this function: never disconnected.
            Err(mpsc::RecvTimeoutError::Disconnected) => unreachable!("a sender is kept here"),
        }
    }
    ended
        .into_iter()
        .map(|e| e.expect("every item ended"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_jobs_at_once_and_each_answer_in_its_place() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (r, m) = (running.clone(), most.clone());
        let ended = each_bounded(
            (0..20).collect(),
            3,
            Duration::from_secs(5),
            move |i: &usize, _| {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                r.fetch_sub(1, Ordering::SeqCst);
                i * 10
            },
        );
        let values: Vec<usize> = ended
            .into_iter()
            .map(|e| match e {
                Ended::Done(v) => v,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(values, (0..20).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_stalled_check_is_abandoned_at_its_deadline_and_the_rest_still_run() {
        let start = Instant::now();
        // One worker: the items after the stalled one run only because a new worker replaced it.
        let ended = each_bounded(
            vec![0, 1, 2, 3],
            1,
            Duration::from_millis(300),
            |i: &usize, deadline| {
                if *i == 1 {
                    std::thread::sleep(Duration::from_secs(30));
                }
                if *i == 2 {
                    panic!("a bug");
                }
                deadline
            },
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(ended[0], Ended::Done(_)));
        assert!(matches!(ended[1], Ended::Overdue));
        assert!(matches!(ended[2], Ended::Panicked));
        // Its deadline counted from its own start, after the stalled one was abandoned.
        let Ended::Done(last) = ended[3] else {
            panic!("{:?}", ended[3])
        };
        assert!(last >= start + Duration::from_millis(600));
    }

    #[test]
    fn no_items_no_wait() {
        let ended = each_bounded(Vec::<u8>::new(), 4, Duration::from_secs(60), |_, _| ());
        assert!(ended.is_empty());
    }
}
