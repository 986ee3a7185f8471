package com.weiyu.line.client;

import com.weiyu.line.v1.BroadcastRequest;
import com.weiyu.line.v1.BroadcastResponse;
import com.weiyu.line.v1.ChannelAdminGrpc;
import com.weiyu.line.v1.MessagingGrpc;
import com.weiyu.line.v1.MulticastRequest;
import com.weiyu.line.v1.MulticastResponse;
import com.weiyu.line.v1.NarrowcastRequest;
import com.weiyu.line.v1.NarrowcastResponse;
import com.weiyu.line.v1.OfficialAccountGrpc;
import com.weiyu.line.v1.PushRequest;
import com.weiyu.line.v1.PushResponse;
import com.weiyu.line.v1.ReplyRequest;
import com.weiyu.line.v1.ReplyResponse;
import com.weiyu.line.v1.SendRequest;
import com.weiyu.line.v1.SendResponse;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptors;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.MetadataUtils;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A connection to line-adapter ({@code weiyu.line.v1}): the generated stubs of {@code
 * ChannelAdmin}, {@code Messaging} and {@code OfficialAccount} with the API key and deadlines
 * applied, idempotent sends, and durable {@link EventSubscription}s.
 *
 * <pre>{@code
 * try (LineAdapterClient client = LineAdapterClient.builder()
 *     .address("line-adapter:50051")
 *     .apiKey(System.getenv("LINE_ADAPTER_API_KEY"))
 *     .build()) {
 *   client.admin().listChannels(ListChannelsRequest.getDefaultInstance());
 * }
 * }</pre>
 *
 * <p>Thread-safe; build one per process and share it. {@link #close()} shuts the channel down.
 */
public final class LineAdapterClient implements AutoCloseable {

  private static final Logger log = LoggerFactory.getLogger(LineAdapterClient.class);

  /** Metadata key of the API key: {@code authorization: Bearer <key>}. */
  public static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  /** Codes after which a send is repeated (with the same idempotency key). */
  private static final Set<Status.Code> SEND_RETRY_CODES =
      Set.of(Status.Code.UNAVAILABLE, Status.Code.DEADLINE_EXCEEDED, Status.Code.ABORTED);

  private final String target;
  private final boolean tls;
  private final ManagedChannel managedChannel;
  private final Channel channel;
  private final Duration callTimeout;
  private final Duration sendTimeout;
  private final int sendMaxAttempts;
  private final Duration sendRetryInitialBackoff;
  private final Duration sendRetryMaxBackoff;
  private final Supplier<String> idempotencyKeys;

  private LineAdapterClient(Builder b, ManagedChannel managedChannel) {
    this.target = b.target;
    this.tls = b.tls;
    this.managedChannel = managedChannel;
    Channel c = managedChannel;
    if (b.apiKey != null && !b.apiKey.isEmpty()) {
      Metadata headers = new Metadata();
      headers.put(AUTHORIZATION, "Bearer " + b.apiKey);
      c = ClientInterceptors.intercept(c, MetadataUtils.newAttachHeadersInterceptor(headers));
    }
    this.channel = c;
    this.callTimeout = b.callTimeout;
    this.sendTimeout = b.sendTimeout;
    this.sendMaxAttempts = b.sendMaxAttempts;
    this.sendRetryInitialBackoff = b.sendRetryInitialBackoff;
    this.sendRetryMaxBackoff = b.sendRetryMaxBackoff;
    this.idempotencyKeys = b.idempotencyKeys;
  }

  /** A builder; {@link Builder#address(String)} is required. */
  public static Builder builder() {
    return new Builder();
  }

  /** The gRPC target this client talks to, e.g. {@code localhost:50051}. */
  public String target() {
    return target;
  }

  /** Whether the connection uses TLS. */
  public boolean isTls() {
    return tls;
  }

  /** The channel with the API key attached, for stubs of your own (no deadline applied). */
  public Channel channel() {
    return channel;
  }

  /** The underlying channel (connectivity state, {@code resetConnectBackoff}). */
  public ManagedChannel managedChannel() {
    return managedChannel;
  }

  /** The default deadline of unary calls. */
  public Duration callTimeout() {
    return callTimeout;
  }

  /**
   * A {@code ChannelAdmin} stub whose calls end after {@link Builder#callTimeout(Duration)}. The
   * deadline starts now: take a new stub per call (they are cheap).
   */
  public ChannelAdminGrpc.ChannelAdminBlockingStub admin() {
    return ChannelAdminGrpc.newBlockingStub(channel)
        .withDeadlineAfter(callTimeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  /**
   * An {@code OfficialAccount} stub (rich menus, chats, followers, insight) whose calls end after
   * {@link Builder#callTimeout(Duration)}; for {@code GetRichMenuImage} the deadline covers the
   * whole stream. The deadline starts now: take a new stub per call.
   */
  public OfficialAccountGrpc.OfficialAccountBlockingStub officialAccount() {
    return OfficialAccountGrpc.newBlockingStub(channel)
        .withDeadlineAfter(callTimeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  /**
   * An asynchronous {@code OfficialAccount} stub, for {@code SetRichMenuImage}'s client stream;
   * no deadline applied.
   */
  public OfficialAccountGrpc.OfficialAccountStub officialAccountAsync() {
    return OfficialAccountGrpc.newStub(channel);
  }

  /**
   * A {@code Messaging} stub whose calls end after {@link Builder#callTimeout(Duration)}; for
   * streams ({@code Subscribe}, {@code GetMessageContent}) the deadline covers the whole stream.
   * Prefer {@link #send(SendRequest)} and its siblings for sends, and {@link
   * #subscription(String)} for Subscribe.
   */
  public MessagingGrpc.MessagingBlockingStub messaging() {
    return messaging(callTimeout);
  }

  /** A {@code Messaging} stub with a deadline of {@code timeout} from now. */
  public MessagingGrpc.MessagingBlockingStub messaging(Duration timeout) {
    return MessagingGrpc.newBlockingStub(channel)
        .withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** A {@code Messaging} stub without deadline, e.g. for a Subscribe that runs for days. */
  public MessagingGrpc.MessagingBlockingStub messagingWithoutDeadline() {
    return MessagingGrpc.newBlockingStub(channel);
  }

  /** The asynchronous {@code Messaging} stub (no deadline applied). */
  public MessagingGrpc.MessagingStub messagingAsync() {
    return MessagingGrpc.newStub(channel);
  }

  /** A new idempotency key (a random UUID), for one logical message. */
  public String newIdempotencyKey() {
    return idempotencyKeys.get();
  }

  /**
   * {@code Messaging.Send} (cheapest route: a fresh reply token, else push), retried safely.
   *
   * <p>Without an {@code idempotency_key} in the request, one is generated here, once, and every
   * attempt of this call carries it: the service answers a repeat with the delivery of the first
   * attempt, so UNAVAILABLE, a client-side deadline or a broken connection are retried (up to
   * {@link Builder#sendRetry(int, Duration, Duration)} attempts) without ever sending twice. To be
   * safe across a restart of your own process too, set the key yourself from your message's id.
   *
   * <p>Returns the delivery as it stands (it may still be QUEUED or SENDING, see the proto); throws
   * the last {@link StatusRuntimeException} otherwise.
   */
  public SendResponse send(SendRequest request) {
    SendRequest keyed =
        request.getIdempotencyKey().isEmpty()
            ? request.toBuilder().setIdempotencyKey(newIdempotencyKey()).build()
            : request;
    return retrySend("Send", keyed.getIdempotencyKey(), () -> sendStub().send(keyed));
  }

  /** {@code Messaging.Reply}, with an idempotency key and retries as {@link #send}. */
  public ReplyResponse reply(ReplyRequest request) {
    ReplyRequest keyed =
        request.getIdempotencyKey().isEmpty()
            ? request.toBuilder().setIdempotencyKey(newIdempotencyKey()).build()
            : request;
    return retrySend("Reply", keyed.getIdempotencyKey(), () -> sendStub().reply(keyed));
  }

  /** {@code Messaging.Push}, with an idempotency key and retries as {@link #send}. */
  public PushResponse push(PushRequest request) {
    PushRequest keyed =
        request.getIdempotencyKey().isEmpty()
            ? request.toBuilder().setIdempotencyKey(newIdempotencyKey()).build()
            : request;
    return retrySend("Push", keyed.getIdempotencyKey(), () -> sendStub().push(keyed));
  }

  /** {@code Messaging.Multicast}, with an idempotency key and retries as {@link #send}. */
  public MulticastResponse multicast(MulticastRequest request) {
    MulticastRequest keyed =
        request.getIdempotencyKey().isEmpty()
            ? request.toBuilder().setIdempotencyKey(newIdempotencyKey()).build()
            : request;
    return retrySend("Multicast", keyed.getIdempotencyKey(), () -> sendStub().multicast(keyed));
  }

  /** {@code Messaging.Broadcast}, with an idempotency key and retries as {@link #send}. */
  public BroadcastResponse broadcast(BroadcastRequest request) {
    BroadcastRequest keyed =
        request.getIdempotencyKey().isEmpty()
            ? request.toBuilder().setIdempotencyKey(newIdempotencyKey()).build()
            : request;
    return retrySend("Broadcast", keyed.getIdempotencyKey(), () -> sendStub().broadcast(keyed));
  }

  /**
   * {@code Messaging.Narrowcast}, with an idempotency key and retries as {@link #send}. It returns
   * once LINE accepted the narrowcast (state ACCEPTED); {@code GetDelivery} follows LINE's progress.
   */
  public NarrowcastResponse narrowcast(NarrowcastRequest request) {
    NarrowcastRequest keyed =
        request.getIdempotencyKey().isEmpty()
            ? request.toBuilder().setIdempotencyKey(newIdempotencyKey()).build()
            : request;
    return retrySend("Narrowcast", keyed.getIdempotencyKey(), () -> sendStub().narrowcast(keyed));
  }

  /**
   * A durable consumer named {@code consumer} (1-64 characters of {@code [A-Za-z0-9._-]}): set the
   * handler and filters, then {@link EventSubscription.Builder#start()}.
   */
  public EventSubscription.Builder subscription(String consumer) {
    return new EventSubscription.Builder(this, consumer);
  }

  /**
   * The service's health ({@code grpc.health.v1.Health/Check}) for {@code service}, e.g. {@code
   * weiyu.line.v1.Messaging}, or {@code ""} for the whole server.
   */
  public HealthCheckResponse.ServingStatus health(String service) {
    return health(service, callTimeout);
  }

  /** {@link #health(String)} with its own deadline (a probe should not wait 30 s). */
  public HealthCheckResponse.ServingStatus health(String service, Duration timeout) {
    return HealthGrpc.newBlockingStub(channel)
        .withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS)
        .check(HealthCheckRequest.newBuilder().setService(service).build())
        .getStatus();
  }

  /** Shuts the channel down, waiting up to 5 s for calls in flight. */
  @Override
  public void close() {
    managedChannel.shutdown();
    try {
      if (!managedChannel.awaitTermination(5, TimeUnit.SECONDS)) {
        managedChannel.shutdownNow();
      }
    } catch (InterruptedException e) {
      managedChannel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  private MessagingGrpc.MessagingBlockingStub sendStub() {
    return messaging(sendTimeout);
  }

  private <T> T retrySend(String rpc, String key, Supplier<T> call) {
    StatusRuntimeException last = null;
    for (int attempt = 1; attempt <= sendMaxAttempts; attempt++) {
      try {
        return call.get();
      } catch (StatusRuntimeException e) {
        last = e;
        if (!retryableSend(e) || attempt == sendMaxAttempts) {
          throw e;
        }
        Duration pause = Backoff.fullJitter(sendRetryInitialBackoff, sendRetryMaxBackoff, attempt);
        log.info(
            "{} with idempotency key {} failed ({}); attempt {} of {} in {} ms with the same key",
            rpc,
            key,
            e.getStatus().getCode(),
            attempt + 1,
            sendMaxAttempts,
            pause.toMillis());
        sleep(pause);
        managedChannel.resetConnectBackoff();
      }
    }
    throw Objects.requireNonNull(last);
  }

  /**
   * Whether a failed send may be repeated: the code says the call may not have been answered, and
   * the status does not name a recorded delivery (a send's final answer carries its {@code
   * delivery_id}; repeating it would only return the same answer).
   */
  static boolean retryableSend(StatusRuntimeException e) {
    return SEND_RETRY_CODES.contains(e.getStatus().getCode())
        && StatusDetails.deliveryId(e).isEmpty();
  }

  private static void sleep(Duration pause) {
    try {
      Thread.sleep(pause.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw Status.CANCELLED
          .withDescription("interrupted while waiting to retry")
          .withCause(e)
          .asRuntimeException();
    }
  }

  /** Jittered exponential backoff. */
  static final class Backoff {
    private Backoff() {}

    /** A pause between 0 and min(max, initial * 2^(attempt-1)) ("full jitter"), at least 1 ms. */
    static Duration fullJitter(Duration initial, Duration max, int attempt) {
      long cap = initial.toMillis();
      for (int i = 1; i < attempt && cap < max.toMillis(); i++) {
        cap *= 2;
      }
      cap = Math.max(1, Math.min(cap, max.toMillis()));
      return Duration.ofMillis(1 + ThreadLocalRandom.current().nextLong(cap));
    }
  }

  /** Builds a {@link LineAdapterClient}. */
  public static final class Builder {
    private String target;
    private String apiKey;
    private Boolean tlsChoice;
    private boolean tls;
    private File trustCertificates;
    private File clientCertificate;
    private File clientKey;
    private String authority;
    private Duration callTimeout = Duration.ofSeconds(30);
    private Duration sendTimeout = Duration.ofSeconds(20);
    private int sendMaxAttempts = 5;
    private Duration sendRetryInitialBackoff = Duration.ofMillis(200);
    private Duration sendRetryMaxBackoff = Duration.ofSeconds(5);
    private Duration keepAliveTime = Duration.ofSeconds(30);
    private Supplier<String> idempotencyKeys = () -> UUID.randomUUID().toString();
    private Consumer<ManagedChannelBuilder<?>> customizer = b -> {};

    private Builder() {}

    /**
     * Where line-adapter's gRPC listener is: {@code host:port}, any gRPC target ({@code
     * dns:///host:port}), or {@code http://host:port} / {@code https://host:port} (https turns TLS
     * on unless {@link #plaintext()} was called).
     */
    public Builder address(String address) {
      Objects.requireNonNull(address, "address");
      String a = address.trim();
      if (a.startsWith("https://")) {
        a = a.substring("https://".length());
        if (tlsChoice == null) {
          tls = true;
        }
      } else if (a.startsWith("http://")) {
        a = a.substring("http://".length());
      }
      if (a.endsWith("/")) {
        a = a.substring(0, a.length() - 1);
      }
      if (a.isEmpty()) {
        throw new IllegalArgumentException("address is empty");
      }
      this.target = a;
      return this;
    }

    /**
     * The API key (one of the service's {@code LINE_ADAPTER_API_KEYS}), sent as {@code
     * authorization: Bearer <key>} on every call. Null or empty: none.
     */
    public Builder apiKey(String apiKey) {
      this.apiKey = apiKey;
      return this;
    }

    /** Plaintext HTTP/2 (the default for {@code host:port} addresses). */
    public Builder plaintext() {
      this.tlsChoice = false;
      this.tls = false;
      return this;
    }

    /** TLS, verifying the server against the JVM's trusted certificates. */
    public Builder tls() {
      this.tlsChoice = true;
      this.tls = true;
      return this;
    }

    /** TLS, verifying the server against the PEM CA certificates in {@code pem}. */
    public Builder tlsTrustCertificates(Path pem) {
      tls();
      this.trustCertificates = pem == null ? null : pem.toFile();
      return this;
    }

    /** TLS with a client certificate (PEM chain and PKCS#8 PEM key), for mutual TLS. */
    public Builder tlsClientCertificate(Path certificateChainPem, Path privateKeyPem) {
      tls();
      this.clientCertificate = certificateChainPem.toFile();
      this.clientKey = privateKeyPem.toFile();
      return this;
    }

    /** The authority (TLS server name) to verify and send, when it differs from the address. */
    public Builder authority(String authority) {
      this.authority = authority;
      return this;
    }

    /** Deadline of each unary call (default 30 s). */
    public Builder callTimeout(Duration timeout) {
      this.callTimeout = requirePositive(timeout, "callTimeout");
      return this;
    }

    /**
     * Deadline of each attempt of a send (default 20 s; the service waits up to 10 s for LINE and
     * then answers with the delivery as it stands).
     */
    public Builder sendTimeout(Duration timeout) {
      this.sendTimeout = requirePositive(timeout, "sendTimeout");
      return this;
    }

    /**
     * How often a send is attempted in all (default 5) and the jittered pauses between attempts
     * (default 200 ms doubling up to 5 s). Every attempt carries the same idempotency key.
     */
    public Builder sendRetry(int maxAttempts, Duration initialBackoff, Duration maxBackoff) {
      if (maxAttempts < 1) {
        throw new IllegalArgumentException("maxAttempts must be at least 1");
      }
      this.sendMaxAttempts = maxAttempts;
      this.sendRetryInitialBackoff = requirePositive(initialBackoff, "initialBackoff");
      this.sendRetryMaxBackoff = requirePositive(maxBackoff, "maxBackoff");
      return this;
    }

    /** HTTP/2 keepalive pings on open calls (default 30 s), so a dead peer is noticed. */
    public Builder keepAliveTime(Duration keepAliveTime) {
      this.keepAliveTime = requirePositive(keepAliveTime, "keepAliveTime");
      return this;
    }

    /** Where idempotency keys come from (default: random UUIDs). */
    public Builder idempotencyKeys(Supplier<String> keys) {
      this.idempotencyKeys = Objects.requireNonNull(keys);
      return this;
    }

    /** Changes the channel builder before the channel is built (interceptors, executors...). */
    public Builder customizeChannel(Consumer<ManagedChannelBuilder<?>> customizer) {
      this.customizer = this.customizer.andThen(Objects.requireNonNull(customizer));
      return this;
    }

    /** Builds the client; the connection is made on the first call. */
    public LineAdapterClient build() {
      if (target == null) {
        throw new IllegalStateException("address is required");
      }
      ChannelCredentials credentials;
      if (tls) {
        TlsChannelCredentials.Builder t = TlsChannelCredentials.newBuilder();
        try {
          if (trustCertificates != null) {
            t.trustManager(trustCertificates);
          }
          if (clientCertificate != null) {
            t.keyManager(clientCertificate, clientKey);
          }
        } catch (IOException e) {
          throw new UncheckedIOException("cannot read the TLS files", e);
        }
        credentials = t.build();
      } else {
        credentials = InsecureChannelCredentials.create();
      }
      ManagedChannelBuilder<?> builder = Grpc.newChannelBuilder(target, credentials);
      if (authority != null && !authority.isEmpty()) {
        builder.overrideAuthority(authority);
      }
      builder
          .keepAliveTime(keepAliveTime.toMillis(), TimeUnit.MILLISECONDS)
          .userAgent("line-adapter-java");
      customizer.accept(builder);
      return new LineAdapterClient(this, builder.build());
    }

    private static Duration requirePositive(Duration d, String name) {
      if (d == null || d.isNegative() || d.isZero()) {
        throw new IllegalArgumentException(name + " must be positive");
      }
      return d;
    }
  }
}
