package com.weiyu.line.spring;

import com.weiyu.line.v1.EventType;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.springframework.boot.context.properties.ConfigurationProperties;

/**
 * {@code line-adapter.*}: where line-adapter is, how to reach it, and the durable consumer the
 * application's event handlers read with.
 *
 * <pre>
 * line-adapter.address=line-adapter:50051
 * line-adapter.api-key=${LINE_ADAPTER_API_KEY}
 * line-adapter.tls.enabled=true
 * line-adapter.tls.trust-certificates=/etc/line-adapter/ca.pem
 * line-adapter.consumer=agent-desk
 * line-adapter.subscription.event-types=EVENT_TYPE_MESSAGE
 * </pre>
 */
@ConfigurationProperties(prefix = "line-adapter")
public class LineAdapterProperties {

  /**
   * line-adapter's gRPC listener: host:port, a gRPC target (dns:///host:port), or
   * http(s)://host:port.
   */
  private String address = "localhost:50051";

  /** API key sent as "authorization: Bearer <key>"; empty: none. */
  private String apiKey;

  /** Deadline of each unary call. */
  private Duration callTimeout = Duration.ofSeconds(30);

  /** Deadline of each attempt of a send (the service waits up to 10 s for LINE). */
  private Duration sendTimeout = Duration.ofSeconds(20);

  /** Attempts of one send in all; each carries the same idempotency key. */
  private int sendMaxAttempts = 5;

  /**
   * Name of the durable consumer (1-64 characters of [A-Za-z0-9._-]) that EventHandler beans and
   * {@code @LineEventListener} methods read the event log with. Unset: no subscription is started.
   */
  private String consumer;

  private final Tls tls = new Tls();

  private final Subscription subscription = new Subscription();

  public String getAddress() {
    return address;
  }

  public void setAddress(String address) {
    this.address = address;
  }

  public String getApiKey() {
    return apiKey;
  }

  public void setApiKey(String apiKey) {
    this.apiKey = apiKey;
  }

  public Duration getCallTimeout() {
    return callTimeout;
  }

  public void setCallTimeout(Duration callTimeout) {
    this.callTimeout = callTimeout;
  }

  public Duration getSendTimeout() {
    return sendTimeout;
  }

  public void setSendTimeout(Duration sendTimeout) {
    this.sendTimeout = sendTimeout;
  }

  public int getSendMaxAttempts() {
    return sendMaxAttempts;
  }

  public void setSendMaxAttempts(int sendMaxAttempts) {
    this.sendMaxAttempts = sendMaxAttempts;
  }

  public String getConsumer() {
    return consumer;
  }

  public void setConsumer(String consumer) {
    this.consumer = consumer;
  }

  public Tls getTls() {
    return tls;
  }

  public Subscription getSubscription() {
    return subscription;
  }

  /** {@code line-adapter.tls.*}. */
  public static class Tls {

    /** Use TLS (also implied by an https:// address). */
    private boolean enabled;

    /** PEM file of the CA certificates to verify the service with; unset: the JVM's. */
    private Path trustCertificates;

    /** PEM certificate chain of this client, for mutual TLS. */
    private Path clientCertificate;

    /** PEM (PKCS#8) private key of this client, for mutual TLS. */
    private Path clientKey;

    /** Server name to verify, when it differs from the address's host. */
    private String authority;

    public boolean isEnabled() {
      return enabled;
    }

    public void setEnabled(boolean enabled) {
      this.enabled = enabled;
    }

    public Path getTrustCertificates() {
      return trustCertificates;
    }

    public void setTrustCertificates(Path trustCertificates) {
      this.trustCertificates = trustCertificates;
    }

    public Path getClientCertificate() {
      return clientCertificate;
    }

    public void setClientCertificate(Path clientCertificate) {
      this.clientCertificate = clientCertificate;
    }

    public Path getClientKey() {
      return clientKey;
    }

    public void setClientKey(Path clientKey) {
      this.clientKey = clientKey;
    }

    public String getAuthority() {
      return authority;
    }

    public void setAuthority(String authority) {
      this.authority = authority;
    }
  }

  /** {@code line-adapter.subscription.*}: the consumer's stream. */
  public static class Subscription {

    /** Start the subscription with the application context. */
    private boolean autoStartup = true;

    /** Only events of these channels (Channel.id); empty: all. */
    private List<String> channelIds = new ArrayList<>();

    /** Only events of these types, e.g. EVENT_TYPE_MESSAGE; empty: all but dead letters. */
    private List<EventType> eventTypes = new ArrayList<>();

    /** Only events of these chats (user, group or room ids); empty: all. */
    private List<String> conversationIds = new ArrayList<>();

    /** An ack goes out once this many handled events wait for one. */
    private int ackBatchSize = 100;

    /** An ack goes out at most this long after the first handled event waiting for one. */
    private Duration ackInterval = Duration.ofSeconds(1);

    /** First reconnect pause (jittered, doubling per failed try). */
    private Duration initialBackoff = Duration.ofMillis(100);

    /** Longest reconnect pause. */
    private Duration maxBackoff = Duration.ofSeconds(10);

    /** How long closing the context waits for the current event and the last ack. */
    private Duration stopTimeout = Duration.ofSeconds(30);

    public boolean isAutoStartup() {
      return autoStartup;
    }

    public void setAutoStartup(boolean autoStartup) {
      this.autoStartup = autoStartup;
    }

    public List<String> getChannelIds() {
      return channelIds;
    }

    public void setChannelIds(List<String> channelIds) {
      this.channelIds = channelIds;
    }

    public List<EventType> getEventTypes() {
      return eventTypes;
    }

    public void setEventTypes(List<EventType> eventTypes) {
      this.eventTypes = eventTypes;
    }

    public List<String> getConversationIds() {
      return conversationIds;
    }

    public void setConversationIds(List<String> conversationIds) {
      this.conversationIds = conversationIds;
    }

    public int getAckBatchSize() {
      return ackBatchSize;
    }

    public void setAckBatchSize(int ackBatchSize) {
      this.ackBatchSize = ackBatchSize;
    }

    public Duration getAckInterval() {
      return ackInterval;
    }

    public void setAckInterval(Duration ackInterval) {
      this.ackInterval = ackInterval;
    }

    public Duration getInitialBackoff() {
      return initialBackoff;
    }

    public void setInitialBackoff(Duration initialBackoff) {
      this.initialBackoff = initialBackoff;
    }

    public Duration getMaxBackoff() {
      return maxBackoff;
    }

    public void setMaxBackoff(Duration maxBackoff) {
      this.maxBackoff = maxBackoff;
    }

    public Duration getStopTimeout() {
      return stopTimeout;
    }

    public void setStopTimeout(Duration stopTimeout) {
      this.stopTimeout = stopTimeout;
    }
  }
}
