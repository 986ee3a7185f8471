package com.weiyu.line.client;

import com.weiyu.line.v1.AckRequest;
import com.weiyu.line.v1.AckResponse;
import com.weiyu.line.v1.Event;
import com.weiyu.line.v1.EventType;
import com.weiyu.line.v1.SubscribeRequest;
import com.weiyu.line.v1.SubscribeResponse;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A durable consumer of line-adapter's event log ({@code Messaging.Subscribe} with a {@code
 * consumer}, and {@code Messaging.Ack}).
 *
 * <pre>{@code
 * EventSubscription subscription = client.subscription("agent-desk")
 *     .eventTypes(EventType.EVENT_TYPE_MESSAGE)
 *     .handler(event -> desk.show(event))
 *     .start();
 * ...
 * subscription.stop();   // finishes the current event, acks what was handled
 * }</pre>
 *
 * <h2>What it does</h2>
 *
 * <ul>
 *   <li>Subscribes from the consumer's acknowledged position (a consumer that never acked starts at
 *       the earliest retained event) and hands each event to the {@link EventHandler}, one at a
 *       time, in sequence order, on its own thread.
 *   <li>Acknowledges after the handler returns. Acks are batched: one {@code Ack} covers every
 *       event handled so far, sent when {@link Builder#ackBatchSize(int)} events are waiting or
 *       {@link Builder#ackInterval(Duration)} after the first of them, whichever comes first.
 *       Checkpoints of the stream advance the position too (past events the filters skip).
 *   <li>Reconnects when the stream ends with UNAVAILABLE (the service sends it on every drain and
 *       restart), on a broken connection, or on other transient codes, after a jittered backoff
 *       ({@link Builder#backoff(Duration, Duration)}), and resumes from the consumer. Before
 *       resubscribing it sends the pending ack. Events the service sends again because an ack had
 *       not reached it are recognised by their sequence and not handed to the handler again.
 *   <li>{@link #stop()} stops cleanly: the event being handled is finished, the acks for every
 *       handled event are sent, the stream is cancelled.
 *   <li>A handler exception stops the subscription ({@link State#FAILED}, {@link #failure()}):
 *       that event is not acknowledged (the events before it are), so the next subscription with
 *       this consumer starts with it. Codes that no retry can fix (INVALID_ARGUMENT, OUT_OF_RANGE
 *       after retention dropped unacknowledged events, UNAUTHENTICATED, PERMISSION_DENIED,
 *       UNIMPLEMENTED...) stop it the same way.
 * </ul>
 *
 * <h2>Delivery guarantee</h2>
 *
 * <p>Every event is handed to the handler at least once, in sequence order. <b>Duplicates happen
 * only after a crash, and only for events that were never acknowledged</b>: within one {@code
 * EventSubscription} the handler never sees an event twice, whatever the service does (restarts,
 * drains, SIGKILL); but when the process dies (or the subscription stops without reaching the
 * service to ack), the events handled since the last successful ack are handed again to the next
 * subscription with the same consumer. Make the handler idempotent for those: skip sequences (or
 * {@code webhook_event_id}s) you already processed. A smaller {@link Builder#ackInterval} and
 * {@link Builder#ackBatchSize} make that window smaller, at the cost of more {@code Ack} calls.
 *
 * <p>A consumer name is meant for one reader at a time (see {@code SubscribeRequest.consumer}).
 */
public final class EventSubscription implements AutoCloseable {

  private static final Logger log = LoggerFactory.getLogger(EventSubscription.class);
  private static final Pattern CONSUMER = Pattern.compile("[A-Za-z0-9._-]{1,64}");

  /** Codes after which the stream is opened again. */
  private static final Set<Status.Code> RETRY_CODES =
      Set.of(
          Status.Code.UNAVAILABLE,
          Status.Code.ABORTED,
          Status.Code.INTERNAL,
          Status.Code.UNKNOWN,
          Status.Code.DEADLINE_EXCEEDED,
          Status.Code.RESOURCE_EXHAUSTED);

  /** Where a subscription stands. */
  public enum State {
    /** Built, not started. */
    NEW,
    /** Opening the stream for the first time. */
    CONNECTING,
    /** The stream is open and has answered. */
    STREAMING,
    /** The stream ended; waiting out the backoff or opening it again. */
    RECONNECTING,
    /** {@link #stop()} was called; finishing the current event and the acks. */
    STOPPING,
    /** Stopped by {@link #stop()}. */
    STOPPED,
    /** Stopped by a handler exception or a status no retry can fix; see {@link #failure()}. */
    FAILED
  }

  /** Callbacks about a subscription's life (all optional; called from its threads). */
  public interface Listener {
    /** The state changed. */
    default void onStateChange(State state) {}

    /** The service confirmed the consumer's position at {@code sequence}. */
    default void onAcked(long sequence) {}

    /** The stream ended with {@code status} and is opened again after {@code delay}. */
    default void onReconnect(Status status, Duration delay) {}
  }

  /** The handler threw for {@link #event()}; the event was not acknowledged. */
  public static final class HandlerException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final transient Event event;

    HandlerException(Event event, Throwable cause) {
      super(
          "the handler failed on event "
              + event.getSequence()
              + " ("
              + event.getWebhookEventId()
              + "): "
              + cause,
          cause);
      this.event = event;
    }

    /** The event the handler failed on. */
    public Event event() {
      return event;
    }
  }

  private final LineAdapterClient client;
  private final String consumer;
  private final SubscribeRequest request;
  private final EventHandler handler;
  private final Listener listener;
  private final int ackBatchSize;
  private final Duration ackInterval;
  private final Duration initialBackoff;
  private final Duration maxBackoff;
  private final Thread thread;
  private final ScheduledExecutorService acker;

  private final AtomicReference<State> state = new AtomicReference<>(State.NEW);
  private final AtomicReference<Throwable> failure = new AtomicReference<>();
  private final AtomicBoolean stopRequested = new AtomicBoolean();
  private final AtomicReference<Context.CancellableContext> streamContext = new AtomicReference<>();
  private final CountDownLatch terminated = new CountDownLatch(1);
  private final Object sleepLock = new Object();

  /** Highest sequence handled (or passed by a checkpoint); what the next ack covers. */
  private final AtomicLong handled = new AtomicLong(0);
  /** Highest sequence the service confirmed for the consumer. */
  private final AtomicLong acked = new AtomicLong(0);
  /** When the oldest unacknowledged handled event was handled (nanoTime), or 0. */
  private final AtomicLong pendingSince = new AtomicLong(0);
  private final AtomicLong pendingCount = new AtomicLong(0);
  private final AtomicBoolean flushQueued = new AtomicBoolean();
  private final AtomicLong reconnects = new AtomicLong();
  private final AtomicLong eventsHandled = new AtomicLong();
  private final AtomicLong redeliveriesSkipped = new AtomicLong();

  private EventSubscription(Builder b) {
    this.client = b.client;
    this.consumer = b.consumer;
    this.handler = Objects.requireNonNull(b.handler, "handler is required");
    this.listener = b.listener;
    this.ackBatchSize = b.ackBatchSize;
    this.ackInterval = b.ackInterval;
    this.initialBackoff = b.initialBackoff;
    this.maxBackoff = b.maxBackoff;
    this.request =
        SubscribeRequest.newBuilder()
            .setConsumer(consumer)
            .addAllChannelIds(b.channelIds)
            .addAllEventTypes(b.eventTypes)
            .addAllConversationIds(b.conversationIds)
            .build();
    ThreadFactory factory = b.threadFactory;
    this.thread = factory.newThread(this::run);
    this.thread.setName("line-adapter-subscription-" + consumer);
    this.acker =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, "line-adapter-ack-" + consumer);
              t.setDaemon(true);
              return t;
            });
  }

  /** The consumer's name. */
  public String consumer() {
    return consumer;
  }

  /** Where the subscription stands. */
  public State state() {
    return state.get();
  }

  /** Whether it is running (started, not yet stopped or failed). */
  public boolean isRunning() {
    State s = state.get();
    return s == State.CONNECTING || s == State.STREAMING || s == State.RECONNECTING;
  }

  /**
   * Why it failed: a {@link HandlerException} or the {@link StatusRuntimeException} that ended it;
   * null unless {@link State#FAILED}.
   */
  public Throwable failure() {
    return failure.get();
  }

  /** Highest sequence handled so far (0 before the first event). */
  public long lastHandledSequence() {
    return handled.get();
  }

  /** Highest sequence the service confirmed as the consumer's position (0 before the first ack). */
  public long ackedSequence() {
    return acked.get();
  }

  /** How often the stream was opened again. */
  public long reconnects() {
    return reconnects.get();
  }

  /** How many events the handler returned from. */
  public long eventsHandled() {
    return eventsHandled.get();
  }

  /** How many events the service sent again after a reconnect and were not handed over twice. */
  public long redeliveriesSkipped() {
    return redeliveriesSkipped.get();
  }

  /** Starts reading; returns at once. */
  public EventSubscription start() {
    if (!state.compareAndSet(State.NEW, State.CONNECTING)) {
      throw new IllegalStateException("already started");
    }
    listener.onStateChange(State.CONNECTING);
    long period = Math.max(10, ackInterval.toMillis() / 4);
    acker.scheduleWithFixedDelay(this::tick, period, period, TimeUnit.MILLISECONDS);
    thread.start();
    return this;
  }

  /**
   * Stops cleanly and waits up to 30 s: lets the handler finish the event it holds, sends the ack
   * for every handled event, ends the stream.
   *
   * @return true when it stopped within the time
   */
  public boolean stop() {
    return stop(Duration.ofSeconds(30));
  }

  /** {@link #stop()} waiting at most {@code timeout}. */
  public boolean stop(Duration timeout) {
    requestStop();
    return awaitTermination(timeout);
  }

  /** Asks it to stop without waiting. */
  public void requestStop() {
    if (state.get() == State.NEW) {
      stopRequested.set(true);
      setState(State.STOPPED);
      acker.shutdownNow();
      terminated.countDown();
      return;
    }
    if (stopRequested.compareAndSet(false, true)) {
      State s = state.get();
      if (s != State.FAILED && s != State.STOPPED) {
        setState(State.STOPPING);
      }
      Context.CancellableContext ctx = streamContext.get();
      if (ctx != null) {
        ctx.cancel(null);
      }
      synchronized (sleepLock) {
        sleepLock.notifyAll();
      }
    }
  }

  /** Waits until it stopped or failed. */
  public boolean awaitTermination(Duration timeout) {
    try {
      return terminated.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  /** {@link #stop()}. */
  @Override
  public void close() {
    stop();
  }

  /**
   * Ends it at once as a crash would, without the final ack: what was handled since the last
   * confirmed ack is handed again to the next subscription of this consumer. For tests of that
   * guarantee.
   */
  void abandon() {
    stopRequested.set(true);
    acker.shutdownNow();
    Context.CancellableContext ctx = streamContext.get();
    if (ctx != null) {
      ctx.cancel(null);
    }
    synchronized (sleepLock) {
      sleepLock.notifyAll();
    }
    awaitTermination(Duration.ofSeconds(10));
  }

  // --- the reading thread ---------------------------------------------------------------------

  private void run() {
    int attempt = 0;
    try {
      while (!stopRequested.get()) {
        if (attempt > 0) {
          // The pending ack first, so the consumer resumes as close as possible.
          flushNow();
          client.managedChannel().resetConnectBackoff();
        }
        AtomicBoolean answered = new AtomicBoolean();
        StatusRuntimeException error;
        try {
          error = stream(answered);
        } catch (HandlerException e) {
          fail(e);
          return;
        }
        if (stopRequested.get()) {
          break;
        }
        Status ended = error == null ? Status.OK : error.getStatus();
        if (error != null && !RETRY_CODES.contains(ended.getCode())) {
          fail(error); // with its trailers, so StatusDetails can read them
          return;
        }
        attempt = answered.get() ? 1 : attempt + 1;
        Duration delay = LineAdapterClient.Backoff.fullJitter(initialBackoff, maxBackoff, attempt);
        reconnects.incrementAndGet();
        setState(State.RECONNECTING);
        log.info(
            "subscription {}: stream ended ({}{}); resuming from the consumer in {} ms",
            consumer,
            ended.getCode(),
            ended.getDescription() == null ? "" : ": " + ended.getDescription(),
            delay.toMillis());
        listener.onReconnect(ended, delay);
        pause(delay);
      }
      finish(State.STOPPED);
    } catch (RuntimeException | Error e) {
      fail(e);
    }
  }

  /** Reads one stream until it ends; returns how it ended (null when the service completed it). */
  private StatusRuntimeException stream(AtomicBoolean answered) {
    Context.CancellableContext ctx = Context.current().withCancellation();
    streamContext.set(ctx);
    if (stopRequested.get()) {
      ctx.cancel(null);
    }
    Context previous = ctx.attach();
    try {
      Iterator<SubscribeResponse> responses =
          client.messagingWithoutDeadline().subscribe(request);
      while (responses.hasNext()) {
        SubscribeResponse response = responses.next();
        if (answered.compareAndSet(false, true)) {
          if (state.get() == State.CONNECTING || state.get() == State.RECONNECTING) {
            setState(State.STREAMING);
          }
        }
        if (response.hasEvent()) {
          deliver(response.getEvent());
        } else if (response.hasCheckpoint()) {
          long position = response.getCheckpoint().getSequence();
          if (position > handled.get()) {
            // Everything up to it was sent or filtered out: acking it loses nothing.
            handled.set(position);
            markPending(false);
          }
        }
      }
      return null;
    } catch (StatusRuntimeException e) {
      return e;
    } finally {
      ctx.detach(previous);
      ctx.cancel(null);
      streamContext.set(null);
    }
  }

  private void deliver(Event event) {
    long sequence = event.getSequence();
    if (sequence <= handled.get()) {
      // Sent again after a reconnect because the ack had not reached the service yet.
      redeliveriesSkipped.incrementAndGet();
      return;
    }
    try {
      // Outside the stream's context: calls the handler makes are not cancelled with the stream.
      Context.ROOT.call(
          () -> {
            handler.handle(event);
            return null;
          });
    } catch (Exception | Error e) {
      throw new HandlerException(event, e);
    }
    handled.set(sequence);
    eventsHandled.incrementAndGet();
    markPending(true);
  }

  /** Something waits for an ack: an event (counted towards the batch) or a checkpoint (not). */
  private void markPending(boolean event) {
    pendingSince.compareAndSet(0, System.nanoTime());
    if (event && pendingCount.incrementAndGet() >= ackBatchSize) {
      queueFlush();
    }
  }

  private void pause(Duration delay) {
    long until = System.nanoTime() + delay.toNanos();
    synchronized (sleepLock) {
      long left;
      while (!stopRequested.get() && (left = until - System.nanoTime()) > 0) {
        try {
          TimeUnit.NANOSECONDS.timedWait(sleepLock, left);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          requestStop();
          return;
        }
      }
    }
  }

  private void fail(Throwable e) {
    failure.compareAndSet(null, e);
    if (e instanceof HandlerException) {
      log.error("subscription {} stopped: {}", consumer, e.getMessage(), e.getCause());
    } else {
      log.error("subscription {} stopped: {}", consumer, e.toString());
    }
    finish(State.FAILED);
  }

  private void finish(State end) {
    try {
      if (!acker.isShutdown()) {
        flushNow();
      }
    } finally {
      acker.shutdownNow();
      setState(end);
      terminated.countDown();
    }
  }

  // --- acks ------------------------------------------------------------------------------------

  private void tick() {
    long since = pendingSince.get();
    if (since != 0 && System.nanoTime() - since >= ackInterval.toNanos()) {
      flush();
    }
  }

  private void queueFlush() {
    // One queued (or running) count-triggered flush at a time: events handled while its Ack is
    // in flight do not queue another one for the same batch.
    if (flushQueued.compareAndSet(false, true)) {
      try {
        acker.execute(this::queuedFlush);
      } catch (java.util.concurrent.RejectedExecutionException e) {
        flushQueued.set(false);
      }
    }
  }

  private void queuedFlush() {
    boolean confirmed;
    try {
      confirmed = flush();
    } finally {
      flushQueued.set(false);
    }
    // A full batch collected while the Ack was in flight goes out now (not after a failure:
    // the next event or tick tries again).
    if (confirmed && pendingCount.get() >= ackBatchSize) {
      queueFlush();
    }
  }

  /** Sends the pending ack on the ack thread and waits for it (bounded). */
  private void flushNow() {
    try {
      acker.submit(this::flush).get(client.callTimeout().toMillis() + 1000, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (ExecutionException | TimeoutException | java.util.concurrent.RejectedExecutionException e) {
      log.debug("subscription {}: ack flush did not complete: {}", consumer, e.toString());
    }
  }

  /**
   * Runs on the ack thread only, so acks go out one at a time and never backwards. Returns whether
   * the position is confirmed up to what was handled when it started.
   */
  private boolean flush() {
    long target = handled.get();
    if (target <= acked.get()) {
      pendingSince.set(0);
      pendingCount.set(0);
      return true;
    }
    long countBefore = pendingCount.get();
    try {
      AckResponse response =
          Context.ROOT.call(
              () ->
                  client
                      .messaging()
                      .ack(AckRequest.newBuilder().setConsumer(consumer).setSequence(target).build()));
      confirm(Math.max(target, response.getAckedSequence()), countBefore);
      return true;
    } catch (StatusRuntimeException e) {
      if (e.getStatus().getCode() == Status.Code.INVALID_ARGUMENT) {
        // Below the consumer's position: another stream of this consumer acked further.
        log.warn("subscription {}: ack of {} refused: {}", consumer, target, e.getStatus());
        confirm(target, countBefore);
        return true;
      }
      log.debug("subscription {}: ack of {} failed, retried: {}", consumer, target, e.getStatus());
    } catch (Exception e) {
      log.debug("subscription {}: ack of {} failed, retried: {}", consumer, target, e.toString());
    }
    return false;
  }

  private void confirm(long position, long countBefore) {
    acked.accumulateAndGet(position, Math::max);
    if (handled.get() <= acked.get()) {
      pendingSince.set(0);
      pendingCount.set(0);
    } else {
      pendingSince.set(System.nanoTime());
      pendingCount.addAndGet(-countBefore);
    }
    listener.onAcked(position);
  }

  private void setState(State s) {
    State before = state.getAndSet(s);
    if (before != s) {
      listener.onStateChange(s);
    }
  }

  /** Configures and starts an {@link EventSubscription}. */
  public static final class Builder {
    private final LineAdapterClient client;
    private final String consumer;
    private final List<String> channelIds = new ArrayList<>();
    private final List<EventType> eventTypes = new ArrayList<>();
    private final List<String> conversationIds = new ArrayList<>();
    private EventHandler handler;
    private Listener listener = new Listener() {};
    private int ackBatchSize = 100;
    private Duration ackInterval = Duration.ofSeconds(1);
    private Duration initialBackoff = Duration.ofMillis(100);
    private Duration maxBackoff = Duration.ofSeconds(10);
    private ThreadFactory threadFactory = Thread::new;

    Builder(LineAdapterClient client, String consumer) {
      this.client = Objects.requireNonNull(client);
      if (consumer == null || !CONSUMER.matcher(consumer).matches()) {
        throw new IllegalArgumentException(
            "consumer must be 1-64 characters of [A-Za-z0-9._-], got " + consumer);
      }
      this.consumer = consumer;
    }

    /** The handler of each event (required). */
    public Builder handler(EventHandler handler) {
      this.handler = Objects.requireNonNull(handler);
      return this;
    }

    /** Only events of these channels ({@code Channel.id}); none: all channels. */
    public Builder channelIds(Iterable<String> ids) {
      ids.forEach(channelIds::add);
      return this;
    }

    /** Only events of these channels ({@code Channel.id}); none: all channels. */
    public Builder channelIds(String... ids) {
      return channelIds(List.of(ids));
    }

    /** Only events of these types; none: every type but dead letters. */
    public Builder eventTypes(Iterable<EventType> types) {
      types.forEach(eventTypes::add);
      return this;
    }

    /** Only events of these types; none: every type but dead letters. */
    public Builder eventTypes(EventType... types) {
      return eventTypes(List.of(types));
    }

    /** Only events of these chats (user, group or room ids); none: all chats. */
    public Builder conversationIds(Iterable<String> ids) {
      ids.forEach(conversationIds::add);
      return this;
    }

    /** An ack goes out once this many events wait for one (default 100). */
    public Builder ackBatchSize(int size) {
      if (size < 1) {
        throw new IllegalArgumentException("ackBatchSize must be at least 1");
      }
      this.ackBatchSize = size;
      return this;
    }

    /** An ack goes out at most this long after the first event waiting for one (default 1 s). */
    public Builder ackInterval(Duration interval) {
      if (interval == null || interval.isNegative() || interval.isZero()) {
        throw new IllegalArgumentException("ackInterval must be positive");
      }
      this.ackInterval = interval;
      return this;
    }

    /**
     * Pauses before opening the stream again: random between 0 and {@code initial} doubling per
     * failed try up to {@code max} (default 100 ms to 10 s). A stream that answered resets it.
     */
    public Builder backoff(Duration initial, Duration max) {
      this.initialBackoff = Objects.requireNonNull(initial);
      this.maxBackoff = Objects.requireNonNull(max);
      return this;
    }

    /** Callbacks about state, acks and reconnects. */
    public Builder listener(Listener listener) {
      this.listener = Objects.requireNonNull(listener);
      return this;
    }

    /** Makes the reading thread (default: a new non-daemon thread). */
    public Builder threadFactory(ThreadFactory factory) {
      this.threadFactory = Objects.requireNonNull(factory);
      return this;
    }

    /** Builds it without starting. */
    public EventSubscription build() {
      return new EventSubscription(this);
    }

    /** Builds and starts it. */
    public EventSubscription start() {
      return build().start();
    }
  }
}
