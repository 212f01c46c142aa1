//! One stable sort for what is sorted off the request path: a configuration's compilation and
//! `warden explain`.
//!
//! The standard library's stable sort is generic: every element type and comparison compiled its
//! own copy of it into the module, about 4.5 KB of wasm each, seven of them. This sorts
//! positions, with the comparison behind a reference, so the standard sort is compiled once;
//! what each type adds is the reordering. A comparison through a reference is slower, which a
//! request would feel and a configuration's compilation does not: the 10,000 policies of
//! `warden compile` took the same time either way.

use std::cmp::Ordering;

/// Sorts `items` by `compare`, keeping equal items in their order (as `slice::sort_by` does).
pub(crate) fn sort_by<T>(items: &mut Vec<T>, compare: impl Fn(&T, &T) -> Ordering) {
    let order = {
        let items: &[T] = items;
        positions(items.len(), &|a, b| match (items.get(a), items.get(b)) {
            (Some(a), Some(b)) => compare(a, b),
            _ => Ordering::Equal,
        })
    };
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(order.into_iter().filter_map(|at| slots.get_mut(at).and_then(Option::take)));
}

/// Sorts `items` in their natural order, keeping equal items in their order.
pub(crate) fn sort<T: Ord>(items: &mut Vec<T>) {
    sort_by(items, T::cmp);
}

/// The positions `0..len` in the order `compare` gives them: the one instantiation of the
/// standard library's stable sort.
#[inline(never)]
fn positions(len: usize, compare: &dyn Fn(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| compare(a, b));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator: the test needs many shapes, not randomness.
    fn values(seed: u64, len: usize, range: u64) -> Vec<(u64, usize)> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|i| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 33) % range, i)
            })
            .collect()
    }

    #[test]
    fn orders_as_the_standard_stable_sort_does() {
        for len in [0, 1, 2, 3, 7, 20, 21, 64, 500, 3000] {
            for range in [1, 2, 5, 1000, u64::MAX] {
                for seed in 0..4 {
                    let input = values(seed, len, range);
                    // Compare by key only: equal keys must keep their positions' order.
                    let mut expected = input.clone();
                    expected.sort_by_key(|v| v.0);
                    let mut sorted = input.clone();
                    sort_by(&mut sorted, |a, b| a.0.cmp(&b.0));
                    assert_eq!(sorted, expected, "len {len}, range {range}, seed {seed}");
                    let mut natural = input.clone();
                    sort(&mut natural);
                    let mut natural_expected = input;
                    natural_expected.sort();
                    assert_eq!(natural, natural_expected);
                }
            }
        }
    }

    #[test]
    fn sorts_owned_values_without_losing_or_copying_any() {
        let mut names: Vec<String> =
            ["b", "a", "c", "a", ""].iter().map(|s| s.to_string()).collect();
        sort(&mut names);
        assert_eq!(names, ["", "a", "a", "b", "c"]);
    }
}
