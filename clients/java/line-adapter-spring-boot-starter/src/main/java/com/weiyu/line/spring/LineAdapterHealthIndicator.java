package com.weiyu.line.spring;

import com.weiyu.line.client.EventSubscription;
import com.weiyu.line.client.LineAdapterClient;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckResponse;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.actuate.health.AbstractHealthIndicator;
import org.springframework.boot.actuate.health.Health;

/**
 * {@code lineAdapter} health: UP when line-adapter answers {@code grpc.health.v1} SERVING for
 * {@code weiyu.line.v1.Messaging} and the subscription (if any) is not FAILED. Details: the
 * target, and the subscription's consumer, state, last handled and acknowledged sequences and
 * reconnects.
 */
public class LineAdapterHealthIndicator extends AbstractHealthIndicator {

  /** The service whose health is asked for. */
  public static final String SERVICE = "weiyu.line.v1.Messaging";

  /** How long the check waits for the service. */
  static final java.time.Duration TIMEOUT = java.time.Duration.ofSeconds(3);

  private final LineAdapterClient client;
  private final ObjectProvider<LineEventSubscriptionLifecycle> subscription;

  public LineAdapterHealthIndicator(
      LineAdapterClient client, ObjectProvider<LineEventSubscriptionLifecycle> subscription) {
    super("line-adapter health check failed");
    this.client = client;
    this.subscription = subscription;
  }

  @Override
  protected void doHealthCheck(Health.Builder builder) {
    builder.withDetail("target", client.target()).withDetail("tls", client.isTls());
    boolean up;
    try {
      HealthCheckResponse.ServingStatus status = client.health(SERVICE, TIMEOUT);
      builder.withDetail("service", status.name());
      up = status == HealthCheckResponse.ServingStatus.SERVING;
    } catch (StatusRuntimeException e) {
      builder.withDetail("service", "unreachable").withDetail("error", e.getStatus().toString());
      up = false;
    }
    LineEventSubscriptionLifecycle lifecycle = subscription.getIfAvailable();
    EventSubscription s = lifecycle == null ? null : lifecycle.subscription();
    if (s != null) {
      builder
          .withDetail("consumer", s.consumer())
          .withDetail("subscription", s.state().name())
          .withDetail("lastHandledSequence", s.lastHandledSequence())
          .withDetail("ackedSequence", s.ackedSequence())
          .withDetail("reconnects", s.reconnects());
      if (s.state() == EventSubscription.State.FAILED) {
        builder.withDetail("failure", String.valueOf(s.failure()));
        up = false;
      }
    }
    if (up) {
      builder.up();
    } else {
      builder.down();
    }
  }
}
