package com.weiyu.line.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.weiyu.line.client.testing.FakeLine;
import com.weiyu.line.client.testing.LineAdapterProcess;
import com.weiyu.line.client.testing.Webhooks;
import com.weiyu.line.v1.Channel;
import com.weiyu.line.v1.CreateChannelRequest;
import com.weiyu.line.v1.Event;
import com.weiyu.line.v1.ListChannelsRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckResponse;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The service with TLS on its gRPC listener and scoped API keys: the client's TLS (trusting the
 * service's certificate) and {@code authorization: Bearer} key, and the statuses without them.
 */
class AuthAndTlsTest {

  static final String ADMIN_KEY = "k-admin-0123456789";
  static final String DESK_KEY = "k-desk-0123456789";

  @TempDir static Path dir;
  static Path certificate;
  static FakeLine line;
  static LineAdapterProcess service;

  @BeforeAll
  static void start() throws Exception {
    Path[] pem = selfSignedCertificate(dir);
    certificate = pem[0];
    line = FakeLine.start();
    service = LineAdapterProcess.builder()
        .line(line)
        .env("LINE_ADAPTER_API_KEYS", ADMIN_KEY + ":admin," + DESK_KEY + ":send+subscribe")
        .args("--grpc-tls-cert-file", pem[0].toString(), "--grpc-tls-key-file", pem[1].toString())
        .start();
  }

  @AfterAll
  static void stop() {
    service.close();
    line.close();
  }

  static LineAdapterClient client(String key) {
    return LineAdapterClient.builder()
        .address(service.grpcTarget())
        .tlsTrustCertificates(certificate)
        .authority("localhost")
        .apiKey(key)
        .build();
  }

  @Test
  void keysAndScopesOverTls() {
    try (LineAdapterClient admin = client(ADMIN_KEY);
        LineAdapterClient desk = client(DESK_KEY);
        LineAdapterClient anonymous = client(null)) {
      assertTrue(admin.isTls());
      Channel channel = admin.admin().createChannel(CreateChannelRequest.newBuilder()
          .setDisplayName("Secure").setLineChannelId("6000000001")
          .setChannelSecret(Webhooks.SECRET).setChannelAccessToken("token").build()).getChannel();

      // Health stays open; everything else needs a key with the right scope.
      assertEquals(HealthCheckResponse.ServingStatus.SERVING, anonymous.health("weiyu.line.v1.Messaging"));
      StatusRuntimeException noKey = assertThrows(StatusRuntimeException.class,
          () -> anonymous.admin().listChannels(ListChannelsRequest.getDefaultInstance()));
      assertEquals(Status.Code.UNAUTHENTICATED, noKey.getStatus().getCode());
      StatusRuntimeException wrongScope = assertThrows(StatusRuntimeException.class,
          () -> desk.admin().listChannels(ListChannelsRequest.getDefaultInstance()));
      assertEquals(Status.Code.PERMISSION_DENIED, wrongScope.getStatus().getCode());

      // The desk key subscribes (and acks) over TLS.
      List<Event> seen = new CopyOnWriteArrayList<>();
      EventSubscription subscription =
          desk.subscription("secure-desk").channelIds(channel.getId()).handler(seen::add).start();
      Webhooks.deliver(service.httpBase(), channel.getId(), Webhooks.SECRET,
          Webhooks.textMessage("01JTLS0000000000000000001", Webhooks.USER, "over tls", null));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (seen.isEmpty() && System.nanoTime() < deadline) {
        LineAdapterProcess.sleep(10);
      }
      assertTrue(subscription.stop(Duration.ofSeconds(10)));
      assertEquals(1, seen.size());
      assertEquals(seen.get(0).getSequence(), subscription.ackedSequence());

      // A subscription with a key it may not use stops at once.
      EventSubscription refused = anonymous.subscription("nobody").handler(e -> {}).start();
      assertTrue(refused.awaitTermination(Duration.ofSeconds(10)));
      assertEquals(Status.Code.UNAUTHENTICATED, Status.fromThrowable(refused.failure()).getCode());
    }
  }

  @Test
  void plaintextToATlsListenerFails() {
    try (LineAdapterClient plain = LineAdapterClient.builder().address(service.grpcTarget())
        .apiKey(ADMIN_KEY).callTimeout(Duration.ofSeconds(3)).build()) {
      StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
          () -> plain.admin().listChannels(ListChannelsRequest.getDefaultInstance()));
      // grpc-java reads the TLS alert as a broken HTTP/2 preface.
      assertTrue(e.getStatus().getCode() == Status.Code.UNAVAILABLE
          || e.getStatus().getCode() == Status.Code.INTERNAL, e.getStatus().toString());
    }
  }

  /** A self-signed certificate for localhost by the JDK's keytool; {cert.pem, key.pem}. */
  static Path[] selfSignedCertificate(Path dir) throws Exception {
    Path store = dir.resolve("server.p12");
    Path keytool = Path.of(System.getProperty("java.home"), "bin", "keytool");
    Process p = new ProcessBuilder(keytool.toString(), "-genkeypair", "-alias", "server",
        "-keyalg", "EC", "-groupname", "secp256r1", "-sigalg", "SHA256withECDSA",
        "-dname", "CN=localhost", "-ext", "SAN=dns:localhost,ip:127.0.0.1",
        "-validity", "2", "-storetype", "PKCS12", "-keystore", store.toString(),
        "-storepass", "changeit", "-keypass", "changeit")
        .redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    if (p.waitFor() != 0) {
      throw new IllegalStateException("keytool failed: " + out);
    }
    KeyStore ks = KeyStore.getInstance("PKCS12");
    try (InputStream in = Files.newInputStream(store)) {
      ks.load(in, "changeit".toCharArray());
    }
    PrivateKey key = (PrivateKey) ks.getKey("server", "changeit".toCharArray());
    Certificate cert = ks.getCertificate("server");
    Path certPem = dir.resolve("cert.pem");
    Path keyPem = dir.resolve("key.pem");
    Files.writeString(certPem, pem("CERTIFICATE", cert.getEncoded()));
    Files.writeString(keyPem, pem("PRIVATE KEY", key.getEncoded())); // PKCS#8
    return new Path[] {certPem, keyPem};
  }

  static String pem(String type, byte[] der) {
    return "-----BEGIN " + type + "-----\n"
        + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der)
        + "\n-----END " + type + "-----\n";
  }
}
