package com.weiyu.line.client.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The real line-adapter binary, started as {@code line-adapter serve} on free loopback ports with
 * a temporary data dir and both LINE API bases pointed at a stand-in. It can be stopped (SIGTERM)
 * or killed (SIGKILL) and started again on the same data dir and ports.
 *
 * <p>The binary is {@code -DLINE_ADAPTER_BIN=...}, else the environment variable {@code
 * LINE_ADAPTER_BIN}, else the repository's {@code target/release/line-adapter} (the build passes
 * its path as {@code line-adapter.default-bin}).
 */
public final class LineAdapterProcess implements AutoCloseable {

  /** A master key for tests (32 bytes as 64 hex digits), the same over restarts. */
  public static final String MASTER_KEY = "c3".repeat(32);

  private final Path binary;
  private final Path dataDir;
  private final Path log;
  private final int grpcPort;
  private final int httpPort;
  private final Map<String, String> env;
  private final List<String> extraArgs;
  private Process process;
  private int starts;

  private LineAdapterProcess(Builder b) throws IOException {
    this.binary = binary();
    this.dataDir = Files.createTempDirectory("line-adapter-java-test");
    // Logs stay in the module's target/ (removed by mvn clean), to read after a failure.
    Path logs = Paths.get("target", "line-adapter-test-logs").toAbsolutePath();
    Files.createDirectories(logs);
    this.log = logs.resolve(dataDir.getFileName() + ".log");
    this.grpcPort = freePort();
    this.httpPort = freePort();
    this.env = new LinkedHashMap<>();
    env.put("LINE_ADAPTER_MASTER_KEY", MASTER_KEY);
    env.put("LINE_ADAPTER_SHUTDOWN_GRACE_SECONDS", "5");
    // Readiness must not depend on how full this machine's disk is: the default watermark (1 % of
    // the filesystem) can exceed what a shared CI disk has free.
    env.put("LINE_ADAPTER_STORE_MIN_FREE_BYTES", "0");
    env.put("LINE_ADAPTER_STORE_MIN_FREE_PERCENT", "0");
    // Profile lookups would add requests to the stand-in and records to the streams the tests read.
    env.put("LINE_ADAPTER_LOOKUP_PROFILES", "false");
    env.put("RUST_LOG", "warn,line_adapter=info");
    if (b.line != null) {
      env.put("LINE_ADAPTER_LINE_API_BASE", b.line.url());
      env.put("LINE_ADAPTER_LINE_DATA_API_BASE", b.line.url());
    }
    env.putAll(b.env);
    this.extraArgs = List.copyOf(b.args);
  }

  /** A builder; {@link Builder#start()} starts the process and waits until it is ready. */
  public static Builder builder() {
    return new Builder();
  }

  /** Starts the binary with LINE at {@code line} and waits until it is ready. */
  public static LineAdapterProcess start(FakeLine line) {
    return builder().line(line).start();
  }

  /** The binary the tests run, as an absolute path. */
  public static Path binary() {
    String configured = System.getProperty("LINE_ADAPTER_BIN");
    if (configured == null || configured.isBlank()) {
      configured = System.getenv("LINE_ADAPTER_BIN");
    }
    if (configured == null || configured.isBlank()) {
      configured = System.getProperty("line-adapter.default-bin");
    }
    if (configured == null || configured.isBlank()) {
      configured = "../../target/release/line-adapter";
    }
    Path path = Paths.get(configured).toAbsolutePath().normalize();
    if (!Files.isExecutable(path)) {
      throw new IllegalStateException(
          "no line-adapter binary at "
              + path
              + ": build it (cargo build --release) or set LINE_ADAPTER_BIN");
    }
    return path;
  }

  /** A port nobody listens on right now. */
  public static int freePort() {
    try (ServerSocket socket = new ServerSocket(0)) {
      socket.setReuseAddress(true);
      return socket.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The gRPC target, {@code 127.0.0.1:port}. */
  public String grpcTarget() {
    return "127.0.0.1:" + grpcPort;
  }

  public int grpcPort() {
    return grpcPort;
  }

  /** {@code http://127.0.0.1:port} of the HTTP listener (webhooks, probes). */
  public String httpBase() {
    return "http://127.0.0.1:" + httpPort;
  }

  public Path dataDir() {
    return dataDir;
  }

  /** The service's log file ({@code target/line-adapter-test-logs/}), all runs appended. */
  public Path logFile() {
    return log;
  }

  /** The service's log, all runs appended. */
  public String logText() {
    try {
      return Files.readString(log, StandardCharsets.UTF_8);
    } catch (IOException e) {
      return "(no log: " + e + ")";
    }
  }

  /** Starts the process (again, on the same data dir and ports) and waits for {@code /readyz}. */
  public synchronized LineAdapterProcess startProcess() {
    if (process != null && process.isAlive()) {
      throw new IllegalStateException("already running");
    }
    List<String> command = new ArrayList<>();
    command.add(binary.toString());
    command.add("serve");
    command.add("--grpc-addr");
    command.add("127.0.0.1:" + grpcPort);
    command.add("--http-addr");
    command.add("127.0.0.1:" + httpPort);
    command.add("--data-dir");
    command.add(dataDir.toString());
    command.addAll(extraArgs);
    ProcessBuilder pb = new ProcessBuilder(command);
    pb.environment().keySet().removeIf(k -> k.startsWith("LINE_ADAPTER_"));
    pb.environment().putAll(env);
    pb.redirectErrorStream(true);
    pb.redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
    try {
      Files.writeString(
          log,
          "=== start " + (++starts) + " ===\n",
          StandardCharsets.UTF_8,
          java.nio.file.StandardOpenOption.CREATE,
          java.nio.file.StandardOpenOption.APPEND);
      process = pb.start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    waitReady(Duration.ofSeconds(30));
    return this;
  }

  /** Polls {@code /readyz} until it answers 200. */
  public void waitReady(Duration timeout) {
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build();
    long deadline = System.nanoTime() + timeout.toNanos();
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        throw new IllegalStateException(
            "line-adapter exited with " + process.exitValue() + " while starting:\n" + logText());
      }
      try {
        HttpResponse<Void> r =
            http.send(
                HttpRequest.newBuilder(URI.create(httpBase() + "/readyz"))
                    .timeout(Duration.ofSeconds(1))
                    .build(),
                HttpResponse.BodyHandlers.discarding());
        if (r.statusCode() == 200) {
          return;
        }
      } catch (IOException e) {
        // not listening yet
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
      sleep(20);
    }
    throw new IllegalStateException("line-adapter not ready within " + timeout + ":\n" + logText());
  }

  /** SIGTERM, then waits for the exit; returns the exit code (0 after a clean drain). */
  public synchronized int stop() {
    return end(false);
  }

  /** SIGKILL, then waits for the exit. */
  public synchronized int kill() {
    return end(true);
  }

  public synchronized boolean isRunning() {
    return process != null && process.isAlive();
  }

  private int end(boolean kill) {
    if (process == null) {
      return -1;
    }
    if (kill) {
      process.destroyForcibly();
    } else {
      process.destroy();
    }
    try {
      if (!process.waitFor(30, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
        throw new IllegalStateException("line-adapter did not stop within 30 s after SIGTERM");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      process.destroyForcibly();
    }
    return process.exitValue();
  }

  /** Kills the process if it runs and deletes the data dir. */
  @Override
  public void close() {
    if (process != null && process.isAlive()) {
      process.destroyForcibly();
      try {
        process.waitFor(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    deleteTree(dataDir);
  }

  private static void deleteTree(Path dir) {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> paths = Files.walk(dir)) {
      paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    } catch (IOException e) {
      // best effort
    }
  }

  /** Sleeps; an interrupt fails the test. */
  public static void sleep(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** Configures a {@link LineAdapterProcess}. */
  public static final class Builder {
    private FakeLine line;
    private final Map<String, String> env = new LinkedHashMap<>();
    private final List<String> args = new ArrayList<>();

    /** Points both LINE API bases at {@code line}. */
    public Builder line(FakeLine line) {
      this.line = line;
      return this;
    }

    /** One more {@code LINE_ADAPTER_*} (or other) environment variable. */
    public Builder env(String name, String value) {
      env.put(name, value);
      return this;
    }

    /** More arguments of {@code serve}. */
    public Builder args(String... more) {
      args.addAll(List.of(more));
      return this;
    }

    /** Creates the data dir, starts the process and waits until it is ready. */
    public LineAdapterProcess start() {
      try {
        return new LineAdapterProcess(this).startProcess();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }
}
