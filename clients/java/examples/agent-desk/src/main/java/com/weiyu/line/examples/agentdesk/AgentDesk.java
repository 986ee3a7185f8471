package com.weiyu.line.examples.agentdesk;

import com.weiyu.line.client.LineAdapterClient;
import com.weiyu.line.client.Messages;
import com.weiyu.line.spring.LineEventListener;
import com.weiyu.line.v1.Event;
import com.weiyu.line.v1.EventType;
import com.weiyu.line.v1.MessageContent;
import com.weiyu.line.v1.SendResponse;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;

/** The desk: one log line per inbound message, and "received" back to its chat. */
@Component
public class AgentDesk {

  private static final Logger log = LoggerFactory.getLogger(AgentDesk.class);

  private final LineAdapterClient lineAdapter;

  public AgentDesk(LineAdapterClient lineAdapter) {
    this.lineAdapter = lineAdapter;
  }

  @LineEventListener(types = EventType.EVENT_TYPE_MESSAGE)
  public void onMessage(Event event) {
    MessageContent message = event.getMessage().getMessage();
    String text = message.hasText() ? message.getText().getText() : "<" + message.getTypeName() + ">";
    log.info(
        "#{} {} {}: {}",
        event.getSequence(),
        event.getChannelId(),
        event.getSource().getUserId(),
        text);
    if (Messages.conversationOf(event).isEmpty()) {
      return;
    }
    // Send picks the free reply (this event's token) while it is fresh, else a push; the client
    // retries with one idempotency key, so LINE never gets "received" twice for one call.
    SendResponse sent = lineAdapter.send(Messages.answer(event, Messages.text("received")));
    log.info(
        "#{} answered: {} {} ({})",
        event.getSequence(),
        sent.getRoute(),
        sent.getDelivery().getState(),
        sent.getRouteReason());
  }
}
