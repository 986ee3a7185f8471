package com.weiyu.line.client;

import com.weiyu.line.v1.Conversation;
import com.weiyu.line.v1.Event;
import com.weiyu.line.v1.Message;
import com.weiyu.line.v1.SendRequest;
import com.weiyu.line.v1.Source;
import com.weiyu.line.v1.TextMessage;
import java.util.Optional;

/** Small helpers for building sends from inbound events. */
public final class Messages {

  private Messages() {}

  /** A text message. */
  public static Message text(String text) {
    return Message.newBuilder().setText(TextMessage.newBuilder().setText(text)).build();
  }

  /**
   * The chat an event came from, as a send target: the group if set, else the room, else the
   * user (as the proto says); empty for events without a source.
   */
  public static Optional<Conversation> conversationOf(Event event) {
    if (!event.hasSource()) {
      return Optional.empty();
    }
    Source source = event.getSource();
    Conversation.Builder c = Conversation.newBuilder();
    if (!source.getGroupId().isEmpty()) {
      c.setGroupId(source.getGroupId());
    } else if (!source.getRoomId().isEmpty()) {
      c.setRoomId(source.getRoomId());
    } else if (!source.getUserId().isEmpty()) {
      c.setUserId(source.getUserId());
    } else {
      return Optional.empty();
    }
    return Optional.of(c.build());
  }

  /**
   * A {@code Send} of {@code messages} to the chat {@code event} came from, on its channel: the
   * service answers with the event's fresh reply token when it can, else pushes.
   *
   * @throws IllegalArgumentException when the event has no chat to answer
   */
  public static SendRequest answer(Event event, Message... messages) {
    Conversation to =
        conversationOf(event)
            .orElseThrow(
                () ->
                    new IllegalArgumentException(
                        "event " + event.getSequence() + " has no chat to answer"));
    return SendRequest.newBuilder()
        .setChannelId(event.getChannelId())
        .setConversation(to)
        .addAllMessages(java.util.List.of(messages))
        .build();
  }
}
