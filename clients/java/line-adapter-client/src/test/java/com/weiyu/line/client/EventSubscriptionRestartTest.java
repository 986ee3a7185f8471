package com.weiyu.line.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.weiyu.line.client.testing.FakeLine;
import com.weiyu.line.client.testing.LineAdapterProcess;
import com.weiyu.line.client.testing.Webhooks;
import com.weiyu.line.v1.Channel;
import com.weiyu.line.v1.CreateChannelRequest;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link EventSubscription} while the service goes down under it: 2,000 webhooks are posted while
 * the real binary is stopped with SIGTERM twice and SIGKILL once and started again on the same
 * data dir and ports. The handler sees every event at least once, in sequence order, and a
 * duplicate only for an event whose ack the service had not confirmed.
 */
class EventSubscriptionRestartTest {

  static final int WEBHOOKS = 2_000;

  /** One call of the handler, with the consumer's confirmed position at that moment. */
  record Delivery(long sequence, String webhookEventId, long ackedBefore) {}

  @Test
  @Timeout(180)
  void everyEventAtLeastOnceInOrderThroughSigtermSigkillSigterm() throws Exception {
    try (FakeLine line = FakeLine.start();
        LineAdapterProcess service = LineAdapterProcess.start(line);
        LineAdapterClient client = LineAdapterClient.builder().address(service.grpcTarget()).build()) {
      Channel channel =
          client.admin()
              .createChannel(CreateChannelRequest.newBuilder().setDisplayName("Restarts")
                  .setLineChannelId("4000000001").setChannelSecret(Webhooks.SECRET)
                  .setChannelAccessToken("token").build())
              .getChannel();

      List<Delivery> deliveries = new CopyOnWriteArrayList<>();
      List<Long> acks = new CopyOnWriteArrayList<>();
      AtomicReference<EventSubscription> current = new AtomicReference<>();
      EventSubscription subscription =
          client.subscription("restarts")
              .ackBatchSize(50)
              .ackInterval(Duration.ofMillis(200))
              .backoff(Duration.ofMillis(50), Duration.ofSeconds(1))
              .listener(new EventSubscription.Listener() {
                @Override
                public void onAcked(long sequence) {
                  acks.add(sequence);
                }
              })
              .handler(event -> deliveries.add(new Delivery(event.getSequence(),
                  event.getWebhookEventId(), current.get().ackedSequence())))
              .build();
      current.set(subscription);
      subscription.start();

      // LINE's side: each webhook is posted until it is answered 200, as LINE redelivers.
      AtomicInteger answered = new AtomicInteger();
      AtomicInteger refused = new AtomicInteger();
      List<String> posted = new ArrayList<>();
      Thread poster = new Thread(() -> {
        for (int i = 0; i < WEBHOOKS; i++) {
          String id = String.format("01JRESTART%016d", i);
          byte[] body = Webhooks.textMessage(id, Webhooks.USER, "message " + i, null);
          while (true) {
            try {
              if (Webhooks.post(service.httpBase(), channel.getId(), Webhooks.SECRET, body) == 200) {
                break;
              }
            } catch (IOException e) {
              // down or draining: try again
            } catch (InterruptedException e) {
              return;
            }
            refused.incrementAndGet();
            LineAdapterProcess.sleep(20);
          }
          synchronized (posted) {
            posted.add(id);
          }
          answered.incrementAndGet();
        }
      }, "line-poster");
      poster.start();

      List<Integer> exits = new ArrayList<>();
      waitFor(answered, 400);
      exits.add(service.stop()); // SIGTERM
      service.startProcess();
      waitFor(answered, 900);
      exits.add(service.kill()); // SIGKILL
      service.startProcess();
      waitFor(answered, 1400);
      exits.add(service.stop()); // SIGTERM
      service.startProcess();
      poster.join(120_000);
      assertEquals(WEBHOOKS, answered.get(), "every webhook was answered 200");

      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while (distinct(deliveries).size() < WEBHOOKS && System.nanoTime() < deadline) {
        Thread.sleep(20);
      }
      assertTrue(subscription.stop(), "stops cleanly");
      assertEquals(EventSubscription.State.STOPPED, subscription.state(), () -> String.valueOf(subscription.failure()));
      assertEquals(0, exits.get(0), "SIGTERM exits 0 after draining");
      assertEquals(0, exits.get(2), "SIGTERM exits 0 after draining");
      assertTrue(exits.get(1) != 0, "SIGKILL");

      // Every event at least once.
      Set<String> seen = distinct(deliveries);
      assertEquals(new HashSet<>(posted), seen, "the handler saw every webhook's event");
      // One sequence per event, gap-free 1..2000 (the only channel of this service).
      Map<Long, String> bySequence = new HashMap<>();
      for (Delivery d : deliveries) {
        String before = bySequence.putIfAbsent(d.sequence(), d.webhookEventId());
        assertTrue(before == null || before.equals(d.webhookEventId()), "one event per sequence");
      }
      assertEquals(WEBHOOKS, bySequence.size());
      assertEquals(WEBHOOKS, (long) bySequence.keySet().stream().max(Long::compare).orElseThrow());
      // In sequence order; a repeat only of an event not acknowledged when it was handled again.
      long highest = 0;
      int duplicates = 0;
      for (Delivery d : deliveries) {
        if (d.sequence() > highest) {
          highest = d.sequence();
        } else {
          duplicates++;
          assertTrue(d.sequence() > d.ackedBefore(),
              "event " + d.sequence() + " came again although acked up to " + d.ackedBefore());
        }
      }
      // The service was restarted three times under the stream; within one subscription it
      // never hands an event over twice (the ones the service sent again were recognised).
      assertEquals(0, duplicates, "no duplicates without a crash of the consumer");
      assertTrue(subscription.reconnects() >= 3, "reconnected after each stop: " + subscription.reconnects());
      assertEquals(WEBHOOKS, subscription.ackedSequence(), "everything acked at the end");
      for (int i = 1; i < acks.size(); i++) {
        assertTrue(acks.get(i) >= acks.get(i - 1), "acks never go backwards");
      }
      System.out.printf(
          "restart test: %d deliveries, %d re-sent by the service and skipped, %d reconnects, %d acks, %d webhook retries%n",
          deliveries.size(), subscription.redeliveriesSkipped(), subscription.reconnects(), acks.size(), refused.get());
    }
  }

  static Set<String> distinct(List<Delivery> deliveries) {
    Set<String> ids = new HashSet<>();
    for (Delivery d : deliveries) {
      ids.add(d.webhookEventId());
    }
    return ids;
  }

  static void waitFor(AtomicInteger answered, int count) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (answered.get() < count) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("only " + answered.get() + " webhooks answered");
      }
      Thread.sleep(5);
    }
  }

}
