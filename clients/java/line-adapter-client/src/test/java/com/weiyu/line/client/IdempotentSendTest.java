package com.weiyu.line.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.weiyu.line.client.testing.FakeLine;
import com.weiyu.line.client.testing.LineAdapterProcess;
import com.weiyu.line.client.testing.Webhooks;
import com.weiyu.line.v1.Channel;
import com.weiyu.line.v1.Conversation;
import com.weiyu.line.v1.CreateChannelRequest;
import com.weiyu.line.v1.Delivery;
import com.weiyu.line.v1.DeliveryState;
import com.weiyu.line.v1.GetDeliveryRequest;
import com.weiyu.line.v1.Message;
import com.weiyu.line.v1.PushRequest;
import com.weiyu.line.v1.TextMessage;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Sends retried by the client carry one idempotency key: LINE gets each message once. */
class IdempotentSendTest {

  static FakeLine line;
  static LineAdapterProcess service;
  static Channel channel;

  @BeforeAll
  static void start() {
    line = FakeLine.start();
    service = LineAdapterProcess.start(line);
    try (LineAdapterClient client = LineAdapterClient.builder().address(service.grpcTarget()).build()) {
      channel = client.admin().createChannel(CreateChannelRequest.newBuilder().setDisplayName("Sends")
          .setLineChannelId("5000000001").setChannelSecret(Webhooks.SECRET)
          .setChannelAccessToken("token").build()).getChannel();
    }
  }

  @AfterAll
  static void stop() {
    service.close();
    line.close();
  }

  static PushRequest push(String text) {
    return PushRequest.newBuilder().setChannelId(channel.getId())
        .setTo(Conversation.newBuilder().setUserId(Webhooks.USER))
        .addMessages(Message.newBuilder().setText(TextMessage.newBuilder().setText(text))).build();
  }

  static List<FakeLine.Request> pushesOf(String text) {
    return line.requests(r -> r.path().equals("/v2/bot/message/push") && r.bodyText().contains(text));
  }

  @Test
  void aCallThatTimesOutIsRetriedWithTheSameKeyAndSentOnce() {
    List<String> keys = new CopyOnWriteArrayList<>();
    try (LineAdapterClient client = LineAdapterClient.builder()
        .address(service.grpcTarget())
        .sendTimeout(Duration.ofMillis(700))
        .sendRetry(10, Duration.ofMillis(100), Duration.ofMillis(300))
        .idempotencyKeys(() -> {
          String key = "key-" + keys.size() + "-" + System.nanoTime();
          keys.add(key);
          return key;
        })
        .build()) {
      // LINE takes 2 s to accept: the first attempts end at the client's deadline.
      line.script("/v2/bot/message/push",
          FakeLine.Answer.json(200, "{\"sentMessages\":[{\"id\":\"1\",\"quoteToken\":\"q\"}]}")
              .after(Duration.ofSeconds(2)));
      Delivery delivery = client.push(push("slow LINE")).getDelivery();

      assertEquals(1, keys.size(), "one key for the logical message, whatever the attempts");
      assertEquals(keys.get(0), delivery.getIdempotencyKey());
      List<FakeLine.Request> pushes = pushesOf("slow LINE");
      assertEquals(1, pushes.size(), "LINE got the message once");
      assertEquals(delivery.getRetryKey(), pushes.get(0).header("x-line-retry-key"));
      // Whatever state that answer saw, the delivery ends DELIVERED, once.
      long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
      DeliveryState state = delivery.getState();
      while (state != DeliveryState.DELIVERY_STATE_DELIVERED && System.nanoTime() < deadline) {
        LineAdapterProcess.sleep(50);
        state = client.messaging().getDelivery(GetDeliveryRequest.newBuilder()
            .setDeliveryId(delivery.getId()).build()).getDelivery().getState();
      }
      assertEquals(DeliveryState.DELIVERY_STATE_DELIVERED, state);
      assertEquals(1, pushesOf("slow LINE").size());
    }
  }

  @Test
  void aSendWhileTheServiceRestartsGoesOutOnceAfterIt() throws Exception {
    try (LineAdapterClient client = LineAdapterClient.builder()
        .address(service.grpcTarget())
        .sendRetry(30, Duration.ofMillis(100), Duration.ofMillis(500))
        .build()) {
      assertEquals(0, service.stop());
      Thread restart = new Thread(() -> {
        LineAdapterProcess.sleep(700);
        service.startProcess();
      });
      restart.start();
      // The first attempts find nobody listening (UNAVAILABLE), later ones reach the new process.
      Delivery delivery = client.push(push("after the restart")).getDelivery();
      restart.join();
      assertFalse(delivery.getIdempotencyKey().isEmpty());
      assertEquals(DeliveryState.DELIVERY_STATE_DELIVERED, delivery.getState());
      assertEquals(1, pushesOf("after the restart").size());
      assertTrue(service.isRunning());
    }
  }
}
