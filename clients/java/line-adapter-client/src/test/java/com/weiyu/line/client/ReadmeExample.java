package com.weiyu.line.client;

import com.weiyu.line.v1.EventType;
import java.time.Duration;

/** The README's "From Java" code, kept here so that it compiles against the current contract. */
final class ReadmeExample {

  private ReadmeExample() {}

  public static void main(String[] args) {
    // --- README "From Java" starts here ---
    try (LineAdapterClient client = LineAdapterClient.builder()
        .address("localhost:50051")                      // or https://line-adapter:50051
        .apiKey(System.getenv("LINE_ADAPTER_API_KEY"))   // authorization: Bearer <key>
        .build()) {
      EventSubscription desk = client.subscription("agent-desk")  // durable consumer
          .eventTypes(EventType.EVENT_TYPE_MESSAGE)
          .handler(event -> {                            // one at a time, in sequence order
            System.out.println(event.getSource().getUserId() + ": "
                + event.getMessage().getMessage().getText().getText());
            // Reply token while fresh, else push; retried with one idempotency key.
            client.send(Messages.answer(event, Messages.text("received")));
          })                                             // acked after it returns
          .start();
      Runtime.getRuntime().addShutdownHook(new Thread(desk::stop)); // finish, ack, stop
      desk.awaitTermination(Duration.ofDays(3650));
      if (desk.failure() != null) {                      // a handler threw: not acked
        throw new IllegalStateException(desk.failure());
      }
    }
    // --- README "From Java" ends here ---
  }
}
