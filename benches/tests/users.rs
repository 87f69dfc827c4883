//! The `users` scenario's choices: each visit's steps follow the chances given, and the
//! forced ones (an old session, a wallet that cannot pay) always happen.

use std::time::Duration;

use namaskah_bench::users::{cancels, logs_in_again, pick_popular, think, tops_up};
use rand::SeedableRng as _;
use rand::rngs::StdRng;

const DRAWS: usize = 20_000;

fn share(mut draw: impl FnMut() -> bool) -> f64 {
    (0..DRAWS).filter(|_| draw()).count() as f64 / DRAWS as f64
}

#[test]
fn chances_of_zero_and_one_are_exact() {
    let mut rng = StdRng::seed_from_u64(1);
    let fresh = Duration::from_secs(1);
    assert_eq!(share(|| logs_in_again(&mut rng, 0.0, fresh)), 0.0);
    assert_eq!(share(|| logs_in_again(&mut rng, 1.0, fresh)), 1.0);
    assert_eq!(share(|| tops_up(&mut rng, 0.0, 10_000, 188)), 0.0);
    assert_eq!(share(|| cancels(&mut rng, 1.0)), 1.0);
}

#[test]
fn chances_in_between_are_about_right() {
    let mut rng = StdRng::seed_from_u64(2);
    let relogin = share(|| logs_in_again(&mut rng, 0.05, Duration::ZERO));
    assert!((0.04..0.06).contains(&relogin), "{relogin}");
    let top_up = share(|| tops_up(&mut rng, 0.1, 10_000, 188));
    assert!((0.085..0.115).contains(&top_up), "{top_up}");
    let cancel = share(|| cancels(&mut rng, 0.2));
    assert!((0.18..0.22).contains(&cancel), "{cancel}");
}

#[test]
fn forced_steps_always_happen() {
    let mut rng = StdRng::seed_from_u64(3);
    // A session older than twelve minutes is renewed.
    assert_eq!(
        share(|| logs_in_again(&mut rng, 0.0, Duration::from_secs(12 * 60))),
        1.0
    );
    // A wallet that cannot pay twice the price is topped up; one that can is not.
    assert_eq!(share(|| tops_up(&mut rng, 0.0, 375, 188)), 1.0);
    assert_eq!(share(|| tops_up(&mut rng, 0.0, 376, 188)), 0.0);
    assert_eq!(share(|| tops_up(&mut rng, 0.0, 0, 0)), 0.0);
}

#[test]
fn picks_and_pauses_stay_in_range() {
    let mut rng = StdRng::seed_from_u64(4);
    assert_eq!(pick_popular(&mut rng, 0), None);
    let mut seen = [false; 8];
    for _ in 0..DRAWS {
        assert_eq!(pick_popular(&mut rng, 1), Some(0));
        let pick = pick_popular(&mut rng, 54).unwrap();
        assert!(pick < 8, "{pick}");
        seen[pick] = true;
        assert!(pick_popular(&mut rng, 3).unwrap() < 3);
    }
    assert!(seen.iter().all(|&s| s), "every popular choice is picked");

    let (min, max) = (Duration::from_millis(500), Duration::from_secs(3));
    for _ in 0..DRAWS {
        let pause = think(&mut rng, min, max);
        assert!(pause >= min && pause <= max, "{pause:?}");
    }
    assert_eq!(think(&mut rng, max, max), max);
    assert_eq!(think(&mut rng, max, min), max);
}
