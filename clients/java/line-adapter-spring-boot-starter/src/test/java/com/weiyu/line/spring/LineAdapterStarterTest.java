package com.weiyu.line.spring;

import static org.assertj.core.api.Assertions.assertThat;

import com.weiyu.line.client.EventHandler;
import com.weiyu.line.client.EventSubscription;
import com.weiyu.line.client.LineAdapterClient;
import com.weiyu.line.client.testing.FakeLine;
import com.weiyu.line.client.testing.LineAdapterProcess;
import com.weiyu.line.client.testing.Webhooks;
import com.weiyu.line.v1.Conversation;
import com.weiyu.line.v1.Event;
import com.weiyu.line.v1.EventType;
import com.weiyu.line.v1.Message;
import com.weiyu.line.v1.SendRequest;
import com.weiyu.line.v1.TextMessage;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.actuate.health.Health;
import org.springframework.boot.actuate.health.Status;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.context.annotation.Bean;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The starter in a Spring Boot context with {@code line-adapter.*} set: a webhook's event reaches
 * the {@code @LineEventListener} (and the {@code EventHandler} bean), whose reply through {@code
 * Send} reaches LINE's stand-in.
 */
@SpringBootTest(
    classes = LineAdapterStarterTest.App.class,
    properties = {
      "line-adapter.consumer=starter-test",
      "line-adapter.subscription.ack-interval=200ms",
      "management.health.defaults.enabled=false",
      "management.health.lineAdapter.enabled=true"
    })
@DirtiesContext(classMode = DirtiesContext.ClassMode.AFTER_CLASS)
class LineAdapterStarterTest {

  static Harness harness;

  @DynamicPropertySource
  static void lineAdapter(DynamicPropertyRegistry registry) {
    harness = new Harness("7000000001");
    registry.add("line-adapter.address", () -> harness.service.grpcTarget());
    registry.add("line-adapter.subscription.channel-ids", () -> harness.channel.getId());
  }

  @SpringBootConfiguration
  @EnableAutoConfiguration
  static class App {
    /** Closed with the context, after the subscription stopped. */
    @Bean(destroyMethod = "close")
    Harness harness() {
      return harness;
    }

    @Bean
    Desk desk(LineAdapterClient client) {
      return new Desk(client);
    }

    @Bean
    EventHandler everything() {
      return ALL::add;
    }
  }

  static final List<Event> ALL = new CopyOnWriteArrayList<>();

  /** Answers every text message with "received: <text>". */
  static class Desk {
    final LineAdapterClient client;
    final List<Event> messages = new CopyOnWriteArrayList<>();

    Desk(LineAdapterClient client) {
      this.client = client;
    }

    @LineEventListener(types = EventType.EVENT_TYPE_MESSAGE)
    void onMessage(Event event) {
      messages.add(event);
      client.send(SendRequest.newBuilder()
          .setChannelId(event.getChannelId())
          .setConversation(Conversation.newBuilder().setUserId(event.getSource().getUserId()))
          .addMessages(Message.newBuilder().setText(TextMessage.newBuilder()
              .setText("received: " + event.getMessage().getMessage().getText().getText())))
          .build());
    }
  }

  @Autowired Desk desk;
  @Autowired LineEventSubscriptionLifecycle lifecycle;
  @Autowired LineAdapterHealthIndicator health;
  @Autowired LineEventDispatcher dispatcher;

  @Test
  void aWebhookReachesTheListenerAndItsReplyReachesLine() {
    assertThat(dispatcher.listenerNames()).containsExactly("desk.onMessage");
    String id = "01JSPRING00000000000000001";
    Webhooks.deliver(harness.service.httpBase(), harness.channel.getId(), Webhooks.SECRET,
        Webhooks.body(
            "{\"type\":\"follow\",\"mode\":\"active\",\"timestamp\":1700000000000,\"source\":{\"type\":\"user\",\"userId\":\""
                + Webhooks.USER + "\"},\"webhookEventId\":\"01JSPRINGFOLLOW00000000001\",\"deliveryContext\":{\"isRedelivery\":false},\"follow\":{\"isUnblocked\":false}}"));
    Webhooks.deliver(harness.service.httpBase(), harness.channel.getId(), Webhooks.SECRET,
        Webhooks.textMessage(id, Webhooks.USER, "where is my order", "reply-token-spring"));

    List<FakeLine.Request> replies = harness.line.await(
        r -> r.path().equals("/v2/bot/message/reply"), 1, Duration.ofSeconds(15));
    String body = replies.get(0).bodyText();
    assertThat(body).contains("reply-token-spring").contains("received: where is my order");
    assertThat(desk.messages).extracting(Event::getWebhookEventId).containsExactly(id);
    assertThat(ALL).extracting(Event::getType)
        .containsExactly(EventType.EVENT_TYPE_FOLLOW, EventType.EVENT_TYPE_MESSAGE);

    EventSubscription subscription = lifecycle.subscription();
    assertThat(lifecycle.isRunning()).isTrue();
    long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
    while (subscription.ackedSequence() < desk.messages.get(0).getSequence() && System.nanoTime() < deadline) {
      LineAdapterProcess.sleep(20);
    }
    assertThat(subscription.ackedSequence()).isGreaterThanOrEqualTo(desk.messages.get(0).getSequence());

    Health h = health.health();
    assertThat(h.getStatus()).isEqualTo(Status.UP);
    assertThat(h.getDetails())
        .containsEntry("consumer", "starter-test")
        .containsEntry("subscription", "STREAMING")
        .containsEntry("service", "SERVING");
  }
}
