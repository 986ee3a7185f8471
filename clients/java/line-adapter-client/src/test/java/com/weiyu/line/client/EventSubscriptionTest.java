package com.weiyu.line.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.weiyu.line.client.testing.FakeLine;
import com.weiyu.line.client.testing.LineAdapterProcess;
import com.weiyu.line.client.testing.Webhooks;
import com.weiyu.line.v1.Channel;
import com.weiyu.line.v1.CreateChannelRequest;
import com.weiyu.line.v1.Event;
import com.weiyu.line.v1.EventType;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** {@link EventSubscription}: acks by count and time, clean stop, handler failures, crashes. */
class EventSubscriptionTest {

  static FakeLine line;
  static LineAdapterProcess service;
  static LineAdapterClient client;
  static final AtomicInteger channels = new AtomicInteger();

  @BeforeAll
  static void start() {
    line = FakeLine.start();
    service = LineAdapterProcess.start(line);
    client = LineAdapterClient.builder().address(service.grpcTarget()).build();
  }

  @AfterAll
  static void stop() {
    client.close();
    service.close();
    line.close();
  }

  /** A channel of its own per test, so each test's subscription sees only its events. */
  static Channel newChannel() {
    return client
        .admin()
        .createChannel(
            CreateChannelRequest.newBuilder()
                .setDisplayName("Desk")
                .setLineChannelId(String.valueOf(3_000_000_000L + channels.incrementAndGet()))
                .setChannelSecret(Webhooks.SECRET)
                .setChannelAccessToken("token")
                .build())
        .getChannel();
  }

  /** Posts {@code count} text messages; returns their webhook event ids in order. */
  static List<String> post(Channel channel, String prefix, int count) {
    List<String> ids = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      String id = prefix + "-" + i;
      Webhooks.deliver(service.httpBase(), channel.getId(), Webhooks.SECRET,
          Webhooks.textMessage(id, Webhooks.USER, "message " + i, null));
      ids.add(id);
    }
    return ids;
  }

  static void await(String what, Duration timeout, BooleanSupplier condition) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for " + what);
      }
      LineAdapterProcess.sleep(10);
    }
  }

  /** Adds each event to {@code seen}, taking 50 ms per event (time for a batch's ack to go out). */
  static EventHandler slowly(List<Event> seen) {
    return event -> {
      Thread.sleep(50);
      seen.add(event);
    };
  }

  static String consumer() {
    return "java-" + UUID.randomUUID().toString().substring(0, 8);
  }

  static List<String> ids(List<Event> events) {
    return events.stream().map(Event::getWebhookEventId).collect(Collectors.toList());
  }

  /** Records acks the service confirmed. */
  static final class Acks implements EventSubscription.Listener {
    final List<Long> confirmed = new CopyOnWriteArrayList<>();
    final List<EventSubscription.State> states = new CopyOnWriteArrayList<>();

    @Override
    public void onAcked(long sequence) {
      confirmed.add(sequence);
    }

    @Override
    public void onStateChange(EventSubscription.State state) {
      states.add(state);
    }
  }

  @Test
  void acksGoOutByCountAndTheRestOnStop() {
    Channel channel = newChannel();
    List<String> posted = post(channel, "count-" + UUID.randomUUID(), 12);
    List<Event> seen = new CopyOnWriteArrayList<>();
    Acks acks = new Acks();
    String consumer = consumer();
    EventSubscription subscription =
        client.subscription(consumer)
            .channelIds(channel.getId())
            .ackBatchSize(5)
            .ackInterval(Duration.ofMinutes(10)) // never by time in this test
            .listener(acks)
            .handler(slowly(seen))
            .start();
    await("12 events", Duration.ofSeconds(10), () -> seen.size() == 12);
    assertEquals(posted, ids(seen));
    await("2 acks", Duration.ofSeconds(5), () -> acks.confirmed.size() >= 2);
    LineAdapterProcess.sleep(200);
    // Batches of 5: one ack after the 5th event, one after the 10th; the last two wait.
    assertEquals(2, acks.confirmed.size(), acks.confirmed::toString);
    assertEquals(seen.get(4).getSequence(), acks.confirmed.get(0));
    assertEquals(seen.get(9).getSequence(), acks.confirmed.get(1));

    assertTrue(subscription.stop());
    assertEquals(EventSubscription.State.STOPPED, subscription.state());
    assertTrue(subscription.ackedSequence() >= seen.get(11).getSequence(), "stop acked the rest");
    assertEquals(
        List.of(EventSubscription.State.CONNECTING, EventSubscription.State.STREAMING,
            EventSubscription.State.STOPPING, EventSubscription.State.STOPPED),
        acks.states);

    // The consumer resumes after the last event: only new ones.
    List<Event> again = new CopyOnWriteArrayList<>();
    EventSubscription next =
        client.subscription(consumer).channelIds(channel.getId()).handler(again::add).start();
    List<String> more = post(channel, "count-more-" + UUID.randomUUID(), 2);
    await("2 new events", Duration.ofSeconds(10), () -> again.size() == 2);
    assertTrue(next.stop());
    assertEquals(more, ids(again));
  }

  @Test
  void acksGoOutByTimeWhenTheBatchDoesNotFill() {
    Channel channel = newChannel();
    List<Event> seen = new CopyOnWriteArrayList<>();
    Acks acks = new Acks();
    EventSubscription subscription =
        client.subscription(consumer())
            .channelIds(channel.getId())
            .eventTypes(EventType.EVENT_TYPE_MESSAGE)
            .ackBatchSize(1000)
            .ackInterval(Duration.ofMillis(300))
            .listener(acks)
            .handler(seen::add)
            .start();
    post(channel, "time-" + UUID.randomUUID(), 3);
    await("3 events", Duration.ofSeconds(10), () -> seen.size() == 3);
    long last = seen.get(2).getSequence();
    long handledAt = System.nanoTime();
    await("an ack by time", Duration.ofSeconds(5), () -> subscription.ackedSequence() >= last);
    long waitedMs = (System.nanoTime() - handledAt) / 1_000_000;
    assertTrue(waitedMs < 2000, "acked " + waitedMs + " ms after the last event");
    assertTrue(subscription.stop());
  }

  @Test
  void aHandlerExceptionStopsWithoutAckingThatEvent() {
    Channel channel = newChannel();
    List<String> posted = post(channel, "fail-" + UUID.randomUUID(), 5);
    String poison = posted.get(2);
    List<Event> seen = new CopyOnWriteArrayList<>();
    String consumer = consumer();
    EventSubscription subscription =
        client.subscription(consumer)
            .channelIds(channel.getId())
            .ackBatchSize(1)
            .handler(event -> {
              if (event.getWebhookEventId().equals(poison)) {
                throw new IllegalStateException("cannot store " + poison);
              }
              seen.add(event);
            })
            .start();
    assertTrue(subscription.awaitTermination(Duration.ofSeconds(10)));
    assertEquals(EventSubscription.State.FAILED, subscription.state());
    EventSubscription.HandlerException failure =
        assertInstanceOf(EventSubscription.HandlerException.class, subscription.failure());
    assertEquals(poison, failure.event().getWebhookEventId());
    assertInstanceOf(IllegalStateException.class, failure.getCause());
    assertEquals(posted.subList(0, 2), ids(seen));
    assertEquals(seen.get(1).getSequence(), subscription.ackedSequence(), "the events before it are acked");

    // The next subscription of the consumer starts with the event that failed.
    List<Event> resumed = new CopyOnWriteArrayList<>();
    EventSubscription next =
        client.subscription(consumer).channelIds(channel.getId()).handler(resumed::add).start();
    await("the rest", Duration.ofSeconds(10), () -> resumed.size() == 3);
    assertTrue(next.stop());
    assertEquals(posted.subList(2, 5), ids(resumed));
  }

  @Test
  void afterACrashOnlyUnackedEventsComeAgain() {
    Channel channel = newChannel();
    List<String> posted = post(channel, "crash-" + UUID.randomUUID(), 5);
    List<Event> seen = new CopyOnWriteArrayList<>();
    Acks acks = new Acks();
    String consumer = consumer();
    EventSubscription crashed =
        client.subscription(consumer)
            .channelIds(channel.getId())
            .ackBatchSize(2)
            .ackInterval(Duration.ofMinutes(10))
            .listener(acks)
            .handler(slowly(seen))
            .start();
    await("5 events", Duration.ofSeconds(10), () -> seen.size() == 5);
    await("acks of 2 and 4", Duration.ofSeconds(5), () -> acks.confirmed.size() == 2);
    long acked = crashed.ackedSequence();
    assertEquals(seen.get(3).getSequence(), acked);
    crashed.abandon(); // as if the process died: the 5th event was handled, never acked

    List<Event> after = new CopyOnWriteArrayList<>();
    EventSubscription next =
        client.subscription(consumer).channelIds(channel.getId()).handler(after::add).start();
    List<String> more = post(channel, "crash-more-" + UUID.randomUUID(), 1);
    await("the duplicate and the new event", Duration.ofSeconds(10), () -> after.size() == 2);
    assertTrue(next.stop());
    // The duplicate is exactly the event handled but never acked.
    assertEquals(List.of(posted.get(4), more.get(0)), ids(after));
    assertTrue(after.get(0).getSequence() > acked);
  }

  @Test
  void statusesNoRetryCanFixStopIt() {
    EventSubscription subscription =
        client.subscription(consumer()).channelIds("not-a-channel-id").handler(e -> {}).start();
    assertTrue(subscription.awaitTermination(Duration.ofSeconds(10)));
    assertEquals(EventSubscription.State.FAILED, subscription.state());
    assertEquals(Status.Code.INVALID_ARGUMENT, Status.fromThrowable(subscription.failure()).getCode());
    assertTrue(StatusDetails.fieldViolations(subscription.failure()).keySet().stream()
        .anyMatch(f -> f.startsWith("channel_ids")), subscription.failure().toString());
    assertThrows(IllegalArgumentException.class, () -> client.subscription("no spaces"));
  }
}
