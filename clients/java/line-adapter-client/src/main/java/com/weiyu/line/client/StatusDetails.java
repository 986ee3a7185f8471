package com.weiyu.line.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Reads the error details line-adapter puts on its statuses (the {@code grpc-status-details-bin}
 * trailer, {@code google.rpc.Status}).
 *
 * <ul>
 *   <li>{@link BadRequest} on INVALID_ARGUMENT: one violation per bad field, named by its proto
 *       path ({@code display_name}, {@code messages[0].text.text}).
 *   <li>{@link ErrorInfo} on errors caused by LINE: domain {@value #LINE_DOMAIN}, metadata {@code
 *       line_status}, {@code line_request_id} and, for sends, {@code delivery_id}.
 *   <li>{@link RetryInfo} on RESOURCE_EXHAUSTED (LINE's {@code Retry-After}) and on UNAVAILABLE
 *       while LINE prepares media.
 * </ul>
 */
public final class StatusDetails {

  /** {@code ErrorInfo.domain} of errors caused by LINE. */
  public static final String LINE_DOMAIN = "line.weiyu.com";

  private StatusDetails() {}

  /** All details of the status carried by {@code error}, unpacked; empty when there are none. */
  public static List<Any> all(Throwable error) {
    com.google.rpc.Status status = StatusProto.fromThrowable(error);
    return status == null ? List.of() : status.getDetailsList();
  }

  /** The first detail of type {@code type}, if the status carries one. */
  public static <T extends Message> Optional<T> find(Throwable error, Class<T> type) {
    for (Any any : all(error)) {
      if (any.is(type)) {
        try {
          return Optional.of(any.unpack(type));
        } catch (InvalidProtocolBufferException e) {
          return Optional.empty();
        }
      }
    }
    return Optional.empty();
  }

  /** The {@link BadRequest} detail of an INVALID_ARGUMENT. */
  public static Optional<BadRequest> badRequest(Throwable error) {
    return find(error, BadRequest.class);
  }

  /** Field path to description, from the {@link BadRequest} detail (empty without one). */
  public static Map<String, String> fieldViolations(Throwable error) {
    Map<String, String> fields = new LinkedHashMap<>();
    badRequest(error)
        .ifPresent(
            b ->
                b.getFieldViolationsList()
                    .forEach(v -> fields.merge(v.getField(), v.getDescription(), (a, c) -> a + "; " + c)));
    return fields;
  }

  /** The {@link ErrorInfo} detail (LINE's status and request id for errors caused by LINE). */
  public static Optional<ErrorInfo> errorInfo(Throwable error) {
    return find(error, ErrorInfo.class);
  }

  /** The delay a {@link RetryInfo} detail asks for. */
  public static Optional<Duration> retryDelay(Throwable error) {
    return find(error, RetryInfo.class)
        .filter(RetryInfo::hasRetryDelay)
        .map(r -> Duration.ofSeconds(r.getRetryDelay().getSeconds(), r.getRetryDelay().getNanos()));
  }

  /**
   * The {@code delivery_id} an error of a send names (from {@link ErrorInfo}): the send was recorded
   * and this is its final answer, which a repeat with the same idempotency key would only return
   * again.
   */
  public static Optional<String> deliveryId(Throwable error) {
    return errorInfo(error)
        .map(info -> info.getMetadataMap().get("delivery_id"))
        .filter(id -> !id.isEmpty());
  }
}
