use governor::clock::FakeRelativeClock;

use super::*;

fn limits(text: &str) -> Result<RateLimits, String> {
    RateLimits::parse(text)
}

#[test]
fn without_a_setting_every_endpoint_has_lines_rate() {
    let defaults = limits("").unwrap();
    assert_eq!(defaults, RateLimits::default());
    assert_eq!(
        defaults.to_string(),
        "reply=2000/s,push=2000/s,multicast=200/s,broadcast=60/h,narrowcast=60/h,profile=2000/s,loading=100/s,webhook_endpoint=1000/min,webhook_test=60/h,other=2000/s"
    );
    // What Display writes, parse reads back.
    assert_eq!(limits(&defaults.to_string()).unwrap(), defaults);
}

#[test]
fn named_endpoints_take_the_given_rate_the_others_keep_lines() {
    let set = limits(" push = 50/s, broadcast=30/h ,webhook_endpoint=10/min,").unwrap();
    assert_eq!(set.rate(Endpoint::Push), Rate::new(50, Per::Second));
    assert_eq!(set.rate(Endpoint::Broadcast), Rate::new(30, Per::Hour));
    assert_eq!(set.rate(Endpoint::WebhookUrl), Rate::new(10, Per::Minute));
    assert_eq!(set.rate(Endpoint::Reply), Endpoint::Reply.line_rate());
    assert_eq!(set.rate(Endpoint::Multicast), Rate::new(200, Per::Second));
}

#[test]
fn bad_entries_are_refused_saying_what_is_wrong() {
    let refused = |text: &str, expected: &str| {
        let err = limits(text).unwrap_err();
        assert!(err.contains(expected), "{text}: {err}");
    };
    refused(
        "pushh=50/s",
        "`pushh` is not an endpoint with a rate limit (did you mean `push`?)",
    );
    refused("nope=1/s", "the endpoints are reply, push, multicast");
    assert!(!limits("nope=1/s").unwrap_err().contains("did you mean"));
    refused("push", "`push` is not `name=rate`");
    refused(
        "push=50",
        "`push=50`: a rate is a whole number of requests per `s`, `min` or `h`",
    );
    refused("push=50/d", "per `s`, `min` or `h`");
    refused("push=fast/s", "a rate is a whole number");
    refused("push=-1/s", "a rate is a whole number");
    refused("push=0/s", "`push=0/s`: the count must be 1–1000000");
    refused("push=1000001/s", "the count must be 1–1000000");
    refused("push=1/s,push=2/s", "`push` is given twice");
}

#[test]
fn a_full_bucket_holds_a_tenth_of_a_seconds_worth() {
    let burst = |count, per| Rate::new(count, per).burst();
    assert_eq!(burst(2000, Per::Second), 200);
    assert_eq!(burst(200, Per::Second), 20);
    assert_eq!(burst(50, Per::Second), 5);
    assert_eq!(burst(5, Per::Second), 1);
    assert_eq!(burst(1000, Per::Minute), 1);
    assert_eq!(burst(60, Per::Hour), 1);
    assert_eq!(burst(1_000_000, Per::Second), 100_000);
    assert_eq!(
        Rate::new(50, Per::Second).interval(),
        Duration::from_millis(20)
    );
    assert_eq!(Rate::new(60, Per::Hour).interval(), Duration::from_secs(60));
}

/// Permits `pace` gives now, without time passing, up to `most`.
fn permits_now(pace: &mut Pace<FakeRelativeClock>, most: u32) -> u32 {
    let mut given = 0;
    while given < most && pace.take().is_none() {
        given += 1;
    }
    given
}

/// Permits over `span`, asking every millisecond.
fn permits_over(
    pace: &mut Pace<FakeRelativeClock>,
    clock: &FakeRelativeClock,
    span: Duration,
) -> u32 {
    let mut given = 0;
    for _ in 0..span.as_millis() {
        given += permits_now(pace, u32::MAX);
        clock.advance(Duration::from_millis(1));
    }
    given
}

fn pace(count: u32) -> (Pace<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (
        Pace::new(Rate::new(count, Per::Second), clock.clone()),
        clock,
    )
}

#[test]
fn a_bucket_lets_its_burst_through_then_paces_at_its_rate() {
    let (mut pace, clock) = pace(50);
    assert_eq!(permits_now(&mut pace, 100), 5, "the burst");
    assert_eq!(pace.take(), Some(Duration::from_millis(20)));
    // Then one every 20 ms: at 20, 40, … 980 ms in the first second.
    assert_eq!(permits_over(&mut pace, &clock, Duration::from_secs(1)), 49);
    assert_eq!(permits_over(&mut pace, &clock, Duration::from_secs(3)), 150);
    // Idle, it fills up to its burst again, not more.
    clock.advance(Duration::from_secs(10));
    assert_eq!(permits_now(&mut pace, 100), 5);
}

#[test]
fn no_second_sees_more_than_the_rate_plus_the_burst() {
    let (mut pace, clock) = pace(50);
    let mut times = Vec::new();
    for ms in 0..5_000u64 {
        // Idle for a while in the middle, so the bucket fills up again.
        if (2_000..2_500).contains(&ms) {
            clock.advance(Duration::from_millis(1));
            continue;
        }
        for _ in 0..permits_now(&mut pace, u32::MAX) {
            times.push(ms);
        }
        clock.advance(Duration::from_millis(1));
    }
    let most = times
        .iter()
        .map(|start| {
            times
                .iter()
                .filter(|t| (*start..start + 1000).contains(t))
                .count()
        })
        .max()
        .unwrap();
    assert_eq!(most, 50 + 5 - 1, "the burst, then one every 20 ms");
}

#[test]
fn a_rate_limit_429_holds_the_bucket_for_retry_after_and_halves_its_rate() {
    let (mut pace, clock) = pace(50);
    assert_eq!(permits_now(&mut pace, 100), 5);
    assert!(pace.slow_down(Some(Duration::from_secs(2))));
    assert_eq!(pace.take(), Some(Duration::from_secs(2)), "held");
    clock.advance(Duration::from_millis(1500));
    assert_eq!(pace.take(), Some(Duration::from_millis(500)), "still held");
    clock.advance(Duration::from_millis(500));
    // Past the hold: half the rate, one at a time (no burst saved up).
    assert_eq!(permits_now(&mut pace, 100), 1);
    assert_eq!(pace.take(), Some(Duration::from_millis(40)));
    // At 40, 80, … 960 ms.
    assert_eq!(permits_over(&mut pace, &clock, Duration::from_secs(1)), 24);
}

#[test]
fn a_429_without_retry_after_only_slows_and_empties_the_bucket() {
    let (mut pace, clock) = pace(50);
    assert!(pace.slow_down(None));
    assert_eq!(pace.take(), Some(Duration::from_millis(40)));
    clock.advance(Duration::from_millis(40));
    assert_eq!(permits_now(&mut pace, 100), 1);
}

#[test]
fn the_429s_of_requests_already_in_flight_halve_the_rate_once() {
    let (mut pace, clock) = pace(160);
    assert!(pace.slow_down(None));
    for _ in 0..20 {
        assert!(!pace.slow_down(None), "the same burst of 429s");
    }
    assert_eq!(pace.interval(), Duration::from_nanos(12_500_000));
    // A second later LINE still says 429: slower again, down to 1/16.
    for halvings in 2..=MAX_SLOWDOWN {
        clock.advance(SLOWDOWN_SPACING);
        assert!(pace.slow_down(None));
        assert_eq!(
            pace.interval(),
            Rate::new(160, Per::Second).interval() * (1 << halvings)
        );
    }
    clock.advance(SLOWDOWN_SPACING);
    assert!(!pace.slow_down(None), "a sixteenth at most");
    assert_eq!(pace.interval(), Duration::from_millis(100), "10/s");
}

#[test]
fn each_minute_without_a_429_doubles_the_rate_back_up_to_the_configured_one() {
    let (mut pace, clock) = pace(50);
    assert!(pace.slow_down(None));
    clock.advance(SLOWDOWN_SPACING);
    assert!(pace.slow_down(None));
    assert_eq!(pace.interval(), Duration::from_millis(80));
    // Another 429 pushes the recovery back, without halving again.
    clock.advance(Duration::from_millis(500));
    assert!(!pace.slow_down(None));
    clock.advance(RECOVERY - Duration::from_millis(1));
    let _ = pace.take();
    assert_eq!(
        pace.interval(),
        Duration::from_millis(80),
        "not a minute yet"
    );
    clock.advance(Duration::from_millis(1));
    let _ = pace.take();
    assert_eq!(
        pace.interval(),
        Duration::from_millis(40),
        "one halving undone"
    );
    clock.advance(RECOVERY * 5);
    let _ = pace.take();
    assert_eq!(
        pace.interval(),
        Duration::from_millis(20),
        "the configured rate"
    );
    // With its burst again, once it has filled up.
    clock.advance(Duration::from_secs(1));
    assert_eq!(permits_now(&mut pace, 100), 5);
    // A later 429 starts from the configured rate.
    assert!(pace.slow_down(None));
    assert_eq!(pace.interval(), Duration::from_millis(40));
}

#[test]
fn a_later_retry_after_extends_a_hold_an_earlier_one_does_not_shorten_it() {
    let (mut pace, clock) = pace(50);
    pace.slow_down(Some(Duration::from_secs(5)));
    clock.advance(Duration::from_secs(1));
    pace.slow_down(Some(Duration::from_secs(1)));
    assert_eq!(pace.take(), Some(Duration::from_secs(4)));
    pace.slow_down(Some(Duration::from_secs(10)));
    assert_eq!(pace.take(), Some(Duration::from_secs(10)));
    // LINE's word is honoured up to an hour.
    pace.slow_down(Some(Duration::from_secs(u64::MAX / 4)));
    assert_eq!(pace.take(), Some(MAX_HOLD));
}

#[tokio::test]
async fn a_permit_later_than_the_caller_may_wait_is_refused_at_once() {
    let bucket = Bucket::new(Rate::new(1, Per::Minute));
    bucket.permit(Duration::from_secs(10)).await.unwrap();
    let started = std::time::Instant::now();
    let refused = bucket.permit(Duration::from_secs(10)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "no wait");
    assert!(
        refused.retry_after > Duration::from_secs(50)
            && refused.retry_after <= Duration::from_secs(60),
        "{refused:?}"
    );
    // Held by LINE's Retry-After longer than the wait: refused with it.
    let held = Bucket::new(Rate::new(1000, Per::Second));
    held.slow_down(Some(Duration::from_secs(30)));
    let refused = held.permit(Duration::from_secs(1)).await.unwrap_err();
    assert!(refused.retry_after > Duration::from_secs(29), "{refused:?}");
}

#[tokio::test(start_paused = true)]
async fn a_bucket_paces_by_tokio_time_so_paused_tests_wait_their_turn() {
    // 1/s: the second permit comes a second after the first, by tokio's
    // clock. On std's clock a paused sleep would end with no time passed
    // for the bucket, and the waiter would give up at its deadline.
    let bucket = Bucket::new(Rate::new(1, Per::Second));
    bucket.permit(Duration::from_secs(2)).await.unwrap();
    let started = tokio::time::Instant::now();
    bucket.permit(Duration::from_secs(2)).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_millis(900) && waited <= Duration::from_secs(1),
        "{waited:?}"
    );
}

#[tokio::test]
async fn waiters_get_their_permits_in_arrival_order() {
    // 200/s: a burst of 20, then one every 5 ms.
    let bucket = Arc::new(Bucket::new(Rate::new(200, Per::Second)));
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for n in 0..40 {
        let bucket = bucket.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            bucket.permit(Duration::from_secs(10)).await.unwrap();
            order.lock().unwrap().push(n);
        }));
        // Spawned tasks start in spawn order on this runtime; yielding
        // lets each queue before the next is spawned.
        tokio::task::yield_now().await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..40).collect::<Vec<_>>());
}

#[tokio::test]
async fn buckets_are_per_channel_and_endpoint_and_forgotten_with_the_channel() {
    let pacer = Pacer::new(limits("push=1/min").unwrap(), None);
    let push = "/v2/bot/message/push";
    let wait = Duration::from_secs(1);
    pacer.permit("a", Endpoint::Push, push, wait).await.unwrap();
    assert!(pacer.permit("a", Endpoint::Push, push, wait).await.is_err());
    // Another channel, another endpoint: buckets of their own.
    pacer.permit("b", Endpoint::Push, push, wait).await.unwrap();
    let profile = "/v2/bot/profile/:id";
    pacer
        .permit("a", Endpoint::Profile, profile, wait)
        .await
        .unwrap();
    // LINE's 429 for one endpoint holds that one only.
    pacer.slow_down(
        "a",
        Endpoint::Profile,
        profile,
        Some(Duration::from_secs(60)),
    );
    assert!(
        pacer
            .permit("a", Endpoint::Profile, profile, wait)
            .await
            .is_err()
    );
    pacer
        .permit("a", Endpoint::Other, "/v2/bot/info", wait)
        .await
        .unwrap();
    // A deleted channel's buckets go with it (a new one starts full).
    pacer.forget("a");
    pacer.permit("a", Endpoint::Push, push, wait).await.unwrap();
    assert!(pacer.permit("b", Endpoint::Push, push, wait).await.is_err());
}
