package com.weiyu.line.client.testing;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.InvalidKeyException;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.Base64;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** LINE's side of webhooks: bodies, signatures and the POST to line-adapter. */
public final class Webhooks {

  /** A channel secret in LINE's format (32 hex digits). */
  public static final String SECRET = "8c1d3e5f7a9b0c2d4e6f8a0b1c3d5e7f";

  /** A user id in LINE's format. */
  public static final String USER = "U4af4980629abcdef0123456789abcdef";

  private static final HttpClient HTTP =
      HttpClient.newBuilder()
          .version(HttpClient.Version.HTTP_1_1)
          .connectTimeout(Duration.ofSeconds(2))
          .build();

  private Webhooks() {}

  /**
   * LINE's signature: Base64 of HMAC-SHA256 over the exact body bytes, keyed with the channel
   * secret; sent as {@code x-line-signature}.
   */
  public static String sign(String channelSecret, byte[] body) {
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(channelSecret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
      return Base64.getEncoder().encodeToString(mac.doFinal(body));
    } catch (NoSuchAlgorithmException | InvalidKeyException e) {
      throw new IllegalStateException(e);
    }
  }

  /** A webhook body with one text message event from {@code user}. */
  public static byte[] textMessage(String webhookEventId, String user, String text, String replyToken) {
    return body(
        "{\"type\":\"message\",\"mode\":\"active\",\"timestamp\":" + System.currentTimeMillis()
            + ",\"source\":{\"type\":\"user\",\"userId\":\"" + user + "\"},"
            + "\"webhookEventId\":\"" + webhookEventId + "\","
            + "\"deliveryContext\":{\"isRedelivery\":false},"
            + (replyToken == null ? "" : "\"replyToken\":\"" + replyToken + "\",")
            + "\"message\":{\"id\":\"" + Math.abs(webhookEventId.hashCode()) + "\",\"type\":\"text\","
            + "\"text\":\"" + text + "\",\"quoteToken\":\"q-" + webhookEventId + "\","
            + "\"markAsReadToken\":\"mr-" + webhookEventId + "\"}}");
  }

  /** A webhook body with one image message event (content hosted by LINE). */
  public static byte[] imageMessage(String webhookEventId, String user, String messageId) {
    return body(
        "{\"type\":\"message\",\"mode\":\"active\",\"timestamp\":" + System.currentTimeMillis()
            + ",\"source\":{\"type\":\"user\",\"userId\":\"" + user + "\"},"
            + "\"webhookEventId\":\"" + webhookEventId + "\","
            + "\"deliveryContext\":{\"isRedelivery\":false},"
            + "\"replyToken\":\"r-" + webhookEventId + "\","
            + "\"message\":{\"id\":\"" + messageId + "\",\"type\":\"image\","
            + "\"contentProvider\":{\"type\":\"line\"},\"quoteToken\":\"q-" + webhookEventId + "\"}}");
  }

  /** A body of {@code events} (JSON objects) for the bot {@link FakeLine#BOT_USER_ID}. */
  public static byte[] body(String... events) {
    return ("{\"destination\":\"" + FakeLine.BOT_USER_ID + "\",\"events\":[" + String.join(",", events) + "]}")
        .getBytes(StandardCharsets.UTF_8);
  }

  /** POSTs {@code body} to the channel's webhook URL signed with {@code secret}; the status. */
  public static int post(String httpBase, String channelId, String secret, byte[] body)
      throws IOException, InterruptedException {
    HttpRequest request =
        HttpRequest.newBuilder(URI.create(httpBase + "/webhook/line/" + channelId))
            .timeout(Duration.ofSeconds(10))
            .header("content-type", "application/json; charset=utf-8")
            .header("x-line-signature", sign(secret, body))
            .POST(HttpRequest.BodyPublishers.ofByteArray(body))
            .build();
    return HTTP.send(request, HttpResponse.BodyHandlers.discarding()).statusCode();
  }

  /** {@link #post} that insists on 200. */
  public static void deliver(String httpBase, String channelId, String secret, byte[] body) {
    try {
      int status = post(httpBase, channelId, secret, body);
      if (status != 200) {
        throw new AssertionError("the webhook was answered " + status);
      }
    } catch (IOException e) {
      throw new AssertionError("the webhook listener did not answer", e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
