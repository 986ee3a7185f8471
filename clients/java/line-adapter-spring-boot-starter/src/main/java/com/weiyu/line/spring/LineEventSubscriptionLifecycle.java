package com.weiyu.line.spring;

import com.weiyu.line.client.EventSubscription;
import com.weiyu.line.client.LineAdapterClient;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;

/**
 * Runs the application's {@link EventSubscription} ({@code line-adapter.consumer}) with the
 * context: started once every bean is ready (after the web server), stopped first when the context
 * closes, so the event being handled is finished and the last ack is sent while the client is
 * still open.
 */
public class LineEventSubscriptionLifecycle implements SmartLifecycle {

  /** After the web server starts, before its graceful shutdown. */
  public static final int PHASE = SmartLifecycle.DEFAULT_PHASE - 512;

  private static final Logger log = LoggerFactory.getLogger(LineEventSubscriptionLifecycle.class);

  private final LineAdapterClient client;
  private final LineAdapterProperties properties;
  private final LineEventDispatcher dispatcher;
  private volatile EventSubscription subscription;

  public LineEventSubscriptionLifecycle(
      LineAdapterClient client, LineAdapterProperties properties, LineEventDispatcher dispatcher) {
    this.client = client;
    this.properties = properties;
    this.dispatcher = dispatcher;
  }

  /** The running (or last) subscription; null before {@link #start()}. */
  public EventSubscription subscription() {
    return subscription;
  }

  @Override
  public synchronized void start() {
    if (subscription != null && subscription.isRunning()) {
      return;
    }
    if (dispatcher.size() == 0) {
      log.warn(
          "line-adapter.consumer={} is set but there is no EventHandler bean or @LineEventListener"
              + " method: no subscription started",
          properties.getConsumer());
      return;
    }
    LineAdapterProperties.Subscription s = properties.getSubscription();
    subscription =
        client
            .subscription(properties.getConsumer())
            .channelIds(s.getChannelIds())
            .eventTypes(s.getEventTypes())
            .conversationIds(s.getConversationIds())
            .ackBatchSize(s.getAckBatchSize())
            .ackInterval(s.getAckInterval())
            .backoff(s.getInitialBackoff(), s.getMaxBackoff())
            .handler(dispatcher::dispatch)
            .start();
    log.info(
        "line-adapter subscription {} started at {} for {} handler(s)",
        properties.getConsumer(),
        client.target(),
        dispatcher.size());
  }

  @Override
  public synchronized void stop() {
    EventSubscription running = subscription;
    if (running == null) {
      return;
    }
    if (!running.stop(properties.getSubscription().getStopTimeout())) {
      log.warn(
          "line-adapter subscription {} did not stop within {}",
          properties.getConsumer(),
          properties.getSubscription().getStopTimeout());
    } else {
      log.info(
          "line-adapter subscription {} stopped; acknowledged up to {}",
          properties.getConsumer(),
          running.ackedSequence());
    }
  }

  @Override
  public boolean isRunning() {
    EventSubscription running = subscription;
    return running != null && running.isRunning();
  }

  @Override
  public boolean isAutoStartup() {
    return properties.getSubscription().isAutoStartup();
  }

  @Override
  public int getPhase() {
    return PHASE;
  }
}
