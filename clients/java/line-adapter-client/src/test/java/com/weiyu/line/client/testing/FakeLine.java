package com.weiyu.line.client.testing;

import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A stand-in for LINE's APIs (api.line.me and api-data.line.me) on a loopback port, a JDK {@link
 * HttpServer}. It records every request and answers each path line-adapter calls the way LINE
 * does (the same bodies as the Rust suite's stand-in scripts), unless a test scripted an answer
 * for that path.
 *
 * <p>Paths answered by default:
 *
 * <ul>
 *   <li>sends: {@code POST /v2/bot/message/reply|push} (with {@code sentMessages}), {@code
 *       multicast}, {@code broadcast};
 *   <li>lookups: {@code GET /v2/bot/info}, {@code /v2/bot/profile/{user}}, {@code
 *       /v2/bot/group/{group}/summary}, {@code /v2/bot/group|room/{id}/member/{user}};
 *   <li>chat: {@code POST /v2/bot/chat/loading/start} (202), {@code /v2/bot/chat/markAsRead};
 *   <li>quota: {@code GET /v2/bot/message/quota}, {@code /quota/consumption}, {@code
 *       /v2/bot/message/delivery/{route}?date=};
 *   <li>webhook: {@code PUT|GET /v2/bot/channel/webhook/endpoint}, {@code POST
 *       /v2/bot/channel/webhook/test};
 *   <li>tokens: {@code POST /v2/oauth/accessToken}, {@code /v2/oauth/revoke}, {@code
 *       /oauth2/v2.1/token}, {@code /oauth2/v2.1/revoke}, {@code GET /oauth2/v2.1/tokens/kid},
 *       {@code POST /oauth2/v3/token};
 *   <li>media: {@code GET /v2/bot/message/{id}/content} and {@code /content/preview}.
 * </ul>
 *
 * Anything else is {@code 404 {"message":"Not found"}}.
 */
public final class FakeLine implements AutoCloseable {

  /** Bytes served as the content of every media message (a bit over two 64 KiB chunks). */
  public static final byte[] CONTENT = content(150_000);

  /** Bytes served as every preview. */
  public static final byte[] PREVIEW = content(2_000);

  /** The bot's user id (webhooks' {@code destination}). */
  public static final String BOT_USER_ID = "U0123456789abcdef0123456789abcdef";

  /** One request the stand-in received. */
  public record Request(
      String method, String path, String query, Map<String, List<String>> headers, byte[] body) {

    /** The body as UTF-8. */
    public String bodyText() {
      return new String(body, StandardCharsets.UTF_8);
    }

    /** The first value of a header (case-insensitive), or null. */
    public String header(String name) {
      for (Map.Entry<String, List<String>> e : headers.entrySet()) {
        if (e.getKey().equalsIgnoreCase(name) && !e.getValue().isEmpty()) {
          return e.getValue().get(0);
        }
      }
      return null;
    }

    /** A form field of an {@code application/x-www-form-urlencoded} body, or null. */
    public String formField(String name) {
      for (String pair : bodyText().split("&")) {
        int eq = pair.indexOf('=');
        if (eq > 0 && URLDecoder.decode(pair.substring(0, eq), StandardCharsets.UTF_8).equals(name)) {
          return URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8);
        }
      }
      return null;
    }
  }

  /** A scripted answer. */
  public record Answer(int status, Map<String, String> headers, byte[] body, Duration delay) {
    public static Answer json(int status, String body) {
      return new Answer(status, Map.of(), body.getBytes(StandardCharsets.UTF_8), Duration.ZERO);
    }

    public Answer withHeader(String name, String value) {
      Map<String, String> h = new HashMap<>(headers);
      h.put(name, value);
      return new Answer(status, Map.copyOf(h), body, delay);
    }

    /** The same answer, sent after {@code delay}. */
    public Answer after(Duration delay) {
      return new Answer(status, headers, body, delay);
    }
  }

  private static final Pattern PROFILE = Pattern.compile("/v2/bot/profile/([^/]+)");
  private static final Pattern GROUP_SUMMARY = Pattern.compile("/v2/bot/group/([^/]+)/summary");
  private static final Pattern MEMBER = Pattern.compile("/v2/bot/(group|room)/([^/]+)/member/([^/]+)");
  private static final Pattern CONTENT_PATH = Pattern.compile("/v2/bot/message/([^/]+)/content(/preview)?");
  private static final Pattern DELIVERY = Pattern.compile("/v2/bot/message/delivery/(reply|push|multicast|broadcast)");

  private final HttpServer server;
  private final ExecutorService executor;
  private final List<Request> requests = new ArrayList<>();
  private final Map<String, Deque<Answer>> scripts = new HashMap<>();
  private final AtomicLong ids = new AtomicLong(461230966842064897L);
  private volatile String endpoint = "";

  private FakeLine() throws IOException {
    server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 64);
    executor = Executors.newFixedThreadPool(16, r -> {
      Thread t = new Thread(r, "fake-line");
      t.setDaemon(true);
      return t;
    });
    server.setExecutor(executor);
    server.createContext("/", this::handle);
    server.start();
  }

  /** Starts a stand-in on a free loopback port. */
  public static FakeLine start() {
    try {
      return new FakeLine();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The base URL to configure as LINE's API bases. */
  public String url() {
    return "http://127.0.0.1:" + server.getAddress().getPort();
  }

  /** Queues {@code answer} for the next request to {@code path} (without query). */
  public void script(String path, Answer answer) {
    synchronized (this) {
      scripts.computeIfAbsent(path, p -> new ArrayDeque<>()).add(answer);
    }
  }

  /** Queues a JSON answer for the next request to {@code path}. */
  public void script(String path, int status, String body) {
    script(path, Answer.json(status, body));
  }

  /** Every request so far, in arrival order. */
  public synchronized List<Request> requests() {
    return List.copyOf(requests);
  }

  /** The requests whose path (without query) matches. */
  public List<Request> requests(Predicate<Request> filter) {
    return requests().stream().filter(filter).toList();
  }

  /** The requests to {@code path}. */
  public List<Request> requestsTo(String path) {
    return requests(r -> r.path().equals(path));
  }

  /** Waits until {@code count} requests match {@code filter}; returns them. */
  public List<Request> await(Predicate<Request> filter, int count, Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      List<Request> found = requests(filter);
      if (found.size() >= count) {
        return found;
      }
      if (System.nanoTime() > deadline) {
        throw new AssertionError(
            "LINE's stand-in got " + found.size() + " of " + count + " expected requests; all: "
                + requests().stream().map(r -> r.method() + " " + r.path()).toList());
      }
      LineAdapterProcess.sleep(20);
    }
  }

  @Override
  public void close() {
    server.stop(0);
    executor.shutdownNow();
  }

  private void handle(HttpExchange exchange) throws IOException {
    try (exchange) {
      byte[] body;
      try (InputStream in = exchange.getRequestBody()) {
        body = in.readAllBytes();
      }
      String path = exchange.getRequestURI().getRawPath();
      String query = exchange.getRequestURI().getRawQuery();
      Map<String, List<String>> headers = new HashMap<>();
      exchange.getRequestHeaders().forEach((k, v) -> headers.put(k.toLowerCase(), List.copyOf(v)));
      Request request = new Request(exchange.getRequestMethod(), path, query, Map.copyOf(headers), body);
      Answer answer;
      synchronized (this) {
        requests.add(request);
        Deque<Answer> queue = scripts.get(path);
        answer = queue == null ? null : queue.poll();
      }
      if (answer == null) {
        answer = standard(request);
      }
      if (!answer.delay().isZero()) {
        try {
          TimeUnit.MILLISECONDS.sleep(answer.delay().toMillis());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          return;
        }
      }
      Headers out = exchange.getResponseHeaders();
      out.set("content-type", "application/json");
      out.set("x-line-request-id", UUID.randomUUID().toString());
      answer.headers().forEach(out::set);
      byte[] bytes = answer.body();
      exchange.sendResponseHeaders(answer.status(), bytes.length == 0 ? -1 : bytes.length);
      if (bytes.length > 0) {
        try (OutputStream os = exchange.getResponseBody()) {
          os.write(bytes);
        }
      }
    } catch (IOException e) {
      // the caller went away
    }
  }

  /** LINE's answer to {@code request} when nothing is scripted. */
  private Answer standard(Request r) {
    String path = r.path();
    String m = r.method();
    Matcher matcher;
    switch (path) {
      case "/v2/bot/message/reply":
      case "/v2/bot/message/push":
        return ok("{\"sentMessages\":[{\"id\":\"" + ids.incrementAndGet() + "\",\"quoteToken\":\"q"
            + ids.get() + "\"}]}");
      case "/v2/bot/message/multicast":
      case "/v2/bot/message/broadcast":
      case "/v2/bot/chat/markAsRead":
      case "/v2/oauth/revoke":
      case "/oauth2/v2.1/revoke":
        return ok("{}");
      case "/v2/bot/chat/loading/start":
        return Answer.json(202, "{}");
      case "/v2/bot/info":
        return ok("{\"userId\":\"" + BOT_USER_ID + "\",\"basicId\":\"@123abcde\",\"premiumId\":\"@shop\","
            + "\"displayName\":\"Tokyo shop\",\"pictureUrl\":\"https://profile.line-scdn.net/bot\","
            + "\"chatMode\":\"chat\",\"markAsReadMode\":\"manual\"}");
      case "/v2/bot/message/quota":
        return ok("{\"type\":\"limited\",\"value\":1000}");
      case "/v2/bot/message/quota/consumption":
        return ok("{\"totalUsage\":250}");
      case "/v2/bot/channel/webhook/endpoint":
        if (m.equals("PUT")) {
          String text = r.bodyText();
          Matcher e = Pattern.compile("\"endpoint\"\\s*:\\s*\"([^\"]*)\"").matcher(text);
          if (e.find()) {
            endpoint = e.group(1);
          }
          return ok("{}");
        }
        return ok("{\"endpoint\":\"" + endpoint + "\",\"active\":true}");
      case "/v2/bot/channel/webhook/test":
        return ok("{\"success\":true,\"timestamp\":\"2026-12-01T05:38:20.031Z\",\"statusCode\":200,"
            + "\"reason\":\"OK\",\"detail\":\"200\"}");
      case "/v2/oauth/accessToken":
        return ok("{\"access_token\":\"v2-token-" + ids.incrementAndGet()
            + "\",\"expires_in\":2592000,\"token_type\":\"Bearer\"}");
      case "/oauth2/v2.1/token":
        return ok("{\"access_token\":\"v21-token-" + ids.incrementAndGet()
            + "\",\"expires_in\":2592000,\"token_type\":\"Bearer\",\"key_id\":\"key-" + ids.get() + "\"}");
      case "/oauth2/v2.1/tokens/kid":
        return ok("{\"kids\":[]}");
      case "/oauth2/v3/token":
        return ok("{\"access_token\":\"v3-token-" + ids.incrementAndGet()
            + "\",\"expires_in\":900,\"token_type\":\"Bearer\"}");
      default:
        break;
    }
    if (path.startsWith("/v2/bot/message/validate/")) {
      return ok("{}");
    }
    if ((matcher = PROFILE.matcher(path)).matches()) {
      return ok("{\"displayName\":\"Taro\",\"userId\":\"" + matcher.group(1)
          + "\",\"pictureUrl\":\"https://profile.line-scdn.net/taro\",\"statusMessage\":\"Hello\",\"language\":\"ja\"}");
    }
    if ((matcher = GROUP_SUMMARY.matcher(path)).matches()) {
      return ok("{\"groupId\":\"" + matcher.group(1)
          + "\",\"groupName\":\"Shop fans\",\"pictureUrl\":\"https://profile.line-scdn.net/group\"}");
    }
    if ((matcher = MEMBER.matcher(path)).matches()) {
      return ok("{\"displayName\":\"Hanako\",\"userId\":\"" + matcher.group(3)
          + "\",\"pictureUrl\":\"https://profile.line-scdn.net/hanako\"}");
    }
    if ((matcher = DELIVERY.matcher(path)).matches()) {
      return ok("{\"status\":\"ready\",\"success\":" + (10 + matcher.group(1).length()) + "}");
    }
    if ((matcher = CONTENT_PATH.matcher(path)).matches()) {
      boolean preview = matcher.group(2) != null;
      return new Answer(200, Map.of("content-type", preview ? "image/png" : "image/jpeg"),
          preview ? PREVIEW : CONTENT, Duration.ZERO);
    }
    return Answer.json(404, "{\"message\":\"Not found\"}");
  }

  private static Answer ok(String body) {
    return Answer.json(200, body);
  }

  private static byte[] content(int size) {
    byte[] bytes = new byte[size];
    for (int i = 0; i < size; i++) {
      bytes[i] = (byte) (i * 31 + 7);
    }
    return bytes;
  }
}
