//! Run a blocking function over many items on a few threads, keeping their order.

/// `f` applied to every item, on at most `workers` threads, results in item order.
pub fn map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let chunk = items.len().div_ceil(workers.max(1)).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        // A worker's panic is a bug: propagate it rather than lose its results.
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_for_any_worker_count() {
        let items: Vec<u32> = (0..37).collect();
        for workers in [0, 1, 2, 8, 100] {
            assert_eq!(
                super::map(&items, workers, |i| i * 2),
                items.iter().map(|i| i * 2).collect::<Vec<_>>()
            );
        }
        assert!(super::map(&[] as &[u32], 4, |i| *i).is_empty());
    }
}
