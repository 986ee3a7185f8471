package com.weiyu.line.spring;

import static org.assertj.core.api.Assertions.assertThat;

import com.weiyu.line.client.EventSubscription;
import com.weiyu.line.client.LineAdapterClient;
import com.weiyu.line.client.testing.LineAdapterProcess;
import com.weiyu.line.client.testing.Webhooks;
import com.weiyu.line.v1.Event;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.actuate.autoconfigure.health.HealthContributorAutoConfiguration;
import org.springframework.boot.actuate.health.Status;
import org.springframework.boot.autoconfigure.AutoConfigurations;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;

/** Conditions, property binding and the stop with the context, with {@link ApplicationContextRunner}. */
class LineAdapterAutoConfigurationTest {

  static Harness harness;

  @BeforeAll
  static void start() {
    harness = new Harness("7000000002");
  }

  @AfterAll
  static void stop() {
    harness.close();
  }

  final ApplicationContextRunner runner = new ApplicationContextRunner()
      .withConfiguration(AutoConfigurations.of(LineAdapterAutoConfiguration.class,
          LineAdapterHealthAutoConfiguration.class, HealthContributorAutoConfiguration.class));

  static class Recorder {
    final List<Event> events = new CopyOnWriteArrayList<>();

    @LineEventListener
    void on(Event event) {
      events.add(event);
    }
  }

  static class Wrong {
    @LineEventListener
    void on(String notAnEvent) {}
  }

  @Test
  void aClientFromThePropertiesAndNoSubscriptionWithoutAConsumer() {
    runner
        .withPropertyValues("line-adapter.address=https://line-adapter.example:50051",
            "line-adapter.api-key=k", "line-adapter.call-timeout=5s")
        .run(ctx -> {
          assertThat(ctx).hasSingleBean(LineAdapterClient.class);
          LineAdapterClient client = ctx.getBean(LineAdapterClient.class);
          assertThat(client.target()).isEqualTo("line-adapter.example:50051");
          assertThat(client.isTls()).isTrue();
          assertThat(client.callTimeout()).isEqualTo(Duration.ofSeconds(5));
          assertThat(ctx).doesNotHaveBean(LineEventSubscriptionLifecycle.class);
          assertThat(ctx).hasSingleBean(LineAdapterHealthIndicator.class);
        });
    runner.withPropertyValues("line-adapter.tls.enabled=true", "line-adapter.tls.authority=adapter.internal")
        .run(ctx -> assertThat(ctx.getBean(LineAdapterClient.class).isTls()).isTrue());
  }

  @Test
  void aListenerMethodMustTakeAnEvent() {
    runner.withBean(Wrong.class).run(ctx -> assertThat(ctx).hasFailed()
        .getFailure().hasStackTraceContaining("must take exactly one com.weiyu.line.v1.Event"));
  }

  @Test
  void theSubscriptionStopsWithTheContextAndAcksWhatWasHandled() {
    Recorder[] recorder = new Recorder[1];
    EventSubscription[] subscription = new EventSubscription[1];
    runner
        .withBean(Recorder.class)
        .withPropertyValues("line-adapter.address=" + harness.service.grpcTarget(),
            "line-adapter.consumer=runner-test",
            "line-adapter.subscription.ack-interval=1h",
            "line-adapter.subscription.ack-batch-size=1000",
            "line-adapter.subscription.channel-ids=" + harness.channel.getId())
        .run(ctx -> {
          recorder[0] = ctx.getBean(Recorder.class);
          LineEventSubscriptionLifecycle lifecycle = ctx.getBean(LineEventSubscriptionLifecycle.class);
          subscription[0] = lifecycle.subscription();
          for (int i = 0; i < 3; i++) {
            Webhooks.deliver(harness.service.httpBase(), harness.channel.getId(), Webhooks.SECRET,
                Webhooks.textMessage("01JRUNNER0000000000000000" + i, Webhooks.USER, "m" + i, null));
          }
          long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
          while (recorder[0].events.size() < 3 && System.nanoTime() < deadline) {
            LineAdapterProcess.sleep(10);
          }
          assertThat(recorder[0].events).hasSize(3);
          assertThat(subscription[0].ackedSequence()).isZero(); // nothing acked yet (1 h, 1000)
          assertThat(ctx.getBean(LineAdapterHealthIndicator.class).health().getStatus()).isEqualTo(Status.UP);
        });
    // Closing the context stopped the subscription and sent the last ack.
    assertThat(subscription[0].state()).isEqualTo(EventSubscription.State.STOPPED);
    assertThat(subscription[0].ackedSequence()).isEqualTo(recorder[0].events.get(2).getSequence());
  }
}
