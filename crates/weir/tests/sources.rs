//! Iterator sources: integer ranges take a counted loop of their own
//! (`source/iter.rs`, `pull_range`); these tests guard it against
//! off-by-one errors at chunk boundaries and type bounds, and check that a
//! fold whose closure panics still fails the run cleanly on both loops.

use weir::{ErrorKind, PipelineBuilder};

/// Small chunks, so every range below spans several of them.
fn chunked() -> PipelineBuilder {
    PipelineBuilder::new().chunk_size(7)
}

#[tokio::test]
async fn integer_ranges_yield_what_their_iterators_yield_at_the_type_bounds() {
    macro_rules! check {
        ($($range:expr),* $(,)?) => {$(
            let want: Vec<_> = ($range).collect();
            let got = chunked().from_iter($range).collect().await.unwrap();
            assert_eq!(got, want, "{}", stringify!($range));
        )*};
    }
    check!(
        0u8..255,
        u8::MIN..u8::MAX,
        i8::MIN..i8::MAX,
        -3i8..3,
        (u16::MAX - 20)..u16::MAX,
        (i16::MIN)..(i16::MIN + 30),
        (u32::MAX - 15)..u32::MAX,
        -17i32..17,
        (u64::MAX - 40)..u64::MAX,
        (i64::MIN)..(i64::MIN + 9),
        (i64::MAX - 9)..i64::MAX,
        (usize::MAX - 8)..usize::MAX,
        (isize::MIN)..(isize::MIN + 8),
    );
}

#[tokio::test]
async fn empty_and_reversed_ranges_deliver_nothing() {
    let r = chunked().from_iter(5u64..5).run().await.unwrap();
    assert_eq!(r.delivered, 0);
    #[allow(clippy::reversed_empty_ranges)]
    let r = chunked().from_iter(9i32..-9).run().await.unwrap();
    assert_eq!(r.delivered, 0);
    assert_eq!(r.stages[0].items_out, 0);
}

#[tokio::test]
async fn a_range_folded_in_chunks_counts_every_item_once() {
    for n in [0u64, 1, 6, 7, 8, 13, 14, 15, 1000] {
        let sum = chunked()
            .from_iter(0..n)
            .map(|x| x * 3)
            .filter(|x| x & 4 == 0)
            .fold(0u64, |a, x| a + x)
            .await
            .unwrap();
        let want: u64 = (0..n).map(|x| x * 3).filter(|x| x & 4 == 0).sum();
        assert_eq!(sum, want, "n = {n}");
        let r = chunked()
            .from_iter(0..n)
            .filter(|x| x % 3 == 0)
            .run()
            .await
            .unwrap();
        assert_eq!(r.stages[0].items_out, n, "n = {n}");
        assert_eq!(r.delivered + r.dropped, n, "n = {n}");
    }
}

#[tokio::test]
async fn a_take_after_an_endless_range_stops_pulling() {
    let out = chunked().from_iter(0..u64::MAX).take(20).collect().await.unwrap();
    assert_eq!(out, (0..20).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_fold_that_panics_fails_the_run_with_its_stage_and_item() {
    let err = chunked()
        .from_iter(0u32..100)
        .fold(0u32, |a, x| {
            assert!(x != 30, "bad item {x}");
            a + x
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert_eq!(err.item(), Some(30));
    assert!(err.to_string().contains("bad item 30"), "{err}");
}

#[tokio::test]
async fn a_fold_that_panics_on_a_general_iterator_fails_the_run_likewise() {
    // A `Vec` source: the general loop, not the range's.
    let handle = chunked()
        .from_iter((0u32..50).collect::<Vec<_>>())
        .fold(0u32, |a, x| {
            assert!(x != 10, "bad item");
            a + x
        });
    let err = handle.await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panic);
    assert_eq!(err.item(), Some(10));
}
