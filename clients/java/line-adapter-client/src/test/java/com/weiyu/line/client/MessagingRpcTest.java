package com.weiyu.line.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import com.weiyu.line.client.testing.FakeLine;
import com.weiyu.line.client.testing.LineAdapterProcess;
import com.weiyu.line.client.testing.Webhooks;
import com.weiyu.line.v1.AckRequest;
import com.weiyu.line.v1.AckResponse;
import com.weiyu.line.v1.AgeRange;
import com.weiyu.line.v1.BroadcastRequest;
import com.weiyu.line.v1.Channel;
import com.weiyu.line.v1.ContentStatus;
import com.weiyu.line.v1.Conversation;
import com.weiyu.line.v1.CreateChannelRequest;
import com.weiyu.line.v1.Delivery;
import com.weiyu.line.v1.DeliveryState;
import com.weiyu.line.v1.DemographicFilter;
import com.weiyu.line.v1.Event;
import com.weiyu.line.v1.EventType;
import com.weiyu.line.v1.FileMessage;
import com.weiyu.line.v1.GetDeliveryRequest;
import com.weiyu.line.v1.GetGroupMemberProfileRequest;
import com.weiyu.line.v1.GetGroupMemberProfileResponse;
import com.weiyu.line.v1.GetGroupSummaryRequest;
import com.weiyu.line.v1.GetGroupSummaryResponse;
import com.weiyu.line.v1.GetMessageContentRequest;
import com.weiyu.line.v1.GetMessageContentResponse;
import com.weiyu.line.v1.GetProfileRequest;
import com.weiyu.line.v1.GetProfileResponse;
import com.weiyu.line.v1.ListDeliveriesRequest;
import com.weiyu.line.v1.ListDeliveriesResponse;
import com.weiyu.line.v1.MarkAsReadRequest;
import com.weiyu.line.v1.MediaInfo;
import com.weiyu.line.v1.MediaKind;
import com.weiyu.line.v1.Message;
import com.weiyu.line.v1.MessagingGrpc;
import com.weiyu.line.v1.MulticastRequest;
import com.weiyu.line.v1.NarrowcastPhase;
import com.weiyu.line.v1.NarrowcastRecipient;
import com.weiyu.line.v1.NarrowcastRequest;
import com.weiyu.line.v1.PushRequest;
import com.weiyu.line.v1.PushResponse;
import com.weiyu.line.v1.ReplyRequest;
import com.weiyu.line.v1.Route;
import com.weiyu.line.v1.SendRequest;
import com.weiyu.line.v1.SendResponse;
import com.weiyu.line.v1.ShowLoadingAnimationRequest;
import com.weiyu.line.v1.StartPosition;
import com.weiyu.line.v1.SubscribeRequest;
import com.weiyu.line.v1.SubscribeResponse;
import com.weiyu.line.v1.TextMessage;
import com.weiyu.line.v1.UploadMediaRequest;
import com.weiyu.line.v1.UploadMediaResponse;
import com.weiyu.line.v1.UploadMediaStart;
import com.weiyu.line.v1.ValidateMessagesRequest;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every Messaging RPC through the generated stub, against the real binary and LINE's stand-in,
 * with statuses and details read the Java way.
 */
class MessagingRpcTest {

  static final String TOKEN = "lLtOkEn+AbCdEfGhIjKlMnOpQrStUvWxYz0123456789/ab=";
  static final String GROUP = "Ca56f94637c1234567890abcdef012345";
  static final String ROOM = "Ra56f94637c1234567890abcdef012345";
  /** The https base uploads are published under (UploadMedia needs one). */
  static final String BASE = "https://line.example.test";

  static FakeLine line;
  static LineAdapterProcess service;
  static LineAdapterClient client;
  static Channel channel;

  @BeforeAll
  static void start() {
    line = FakeLine.start();
    service = LineAdapterProcess.builder().line(line).env("LINE_ADAPTER_PUBLIC_BASE_URL", BASE).start();
    client = LineAdapterClient.builder().address(service.grpcTarget()).build();
    channel =
        client
            .admin()
            .createChannel(
                CreateChannelRequest.newBuilder()
                    .setDisplayName("Shop")
                    .setLineChannelId("2000000001")
                    .setChannelSecret(Webhooks.SECRET)
                    .setChannelAccessToken(TOKEN)
                    .build())
            .getChannel();
  }

  @AfterAll
  static void stop() {
    client.close();
    service.close();
    line.close();
  }

  static MessagingGrpc.MessagingBlockingStub messaging() {
    return client.messaging();
  }

  static Message text(String text) {
    return Message.newBuilder().setText(TextMessage.newBuilder().setText(text)).build();
  }

  static Conversation user(String id) {
    return Conversation.newBuilder().setUserId(id).build();
  }

  static String newUser() {
    return "U" + UUID.randomUUID().toString().replace("-", "");
  }

  static StatusRuntimeException fails(Status.Code code, Runnable call) {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call::run);
    assertEquals(code, e.getStatus().getCode(), () -> "status: " + e.getStatus());
    return e;
  }

  /** The events of this class's channel from the log, read with Subscribe from EARLIEST. */
  static List<Event> events(int count) {
    try (Context.CancellableContext ctx = Context.current().withCancellation()) {
      return ctx.call(
          () -> {
            Iterator<SubscribeResponse> stream =
                client
                    .messaging(Duration.ofSeconds(10))
                    .subscribe(
                        SubscribeRequest.newBuilder()
                            .addChannelIds(channel.getId())
                            .setPosition(StartPosition.START_POSITION_EARLIEST)
                            .build());
            List<Event> events = new java.util.ArrayList<>();
            while (events.size() < count && stream.hasNext()) {
              SubscribeResponse r = stream.next();
              if (r.hasEvent()) {
                events.add(r.getEvent());
              }
            }
            return events;
          });
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  @Test
  void sendTakesTheFreshReplyTokenThenPushes() {
    String user = newUser();
    String id = "01JAVASEND" + UUID.randomUUID().toString().substring(0, 8);
    Webhooks.deliver(service.httpBase(), channel.getId(), Webhooks.SECRET,
        Webhooks.textMessage(id, user, "hello", "reply-token-" + id));

    SendResponse first =
        messaging()
            .send(SendRequest.newBuilder().setChannelId(channel.getId()).setConversation(user(user))
                .addMessages(text("Thanks, we are on it")).build());
    assertEquals(Route.ROUTE_REPLY, first.getRoute(), first.getRouteReason());
    assertEquals(DeliveryState.DELIVERY_STATE_DELIVERED, first.getDelivery().getState());
    assertEquals(id, first.getDelivery().getReplyWebhookEventId());
    assertEquals(1, first.getDelivery().getSentMessagesCount());
    FakeLine.Request reply = line.requestsTo("/v2/bot/message/reply").stream()
        .filter(r -> r.bodyText().contains("reply-token-" + id)).findFirst().orElseThrow();
    assertTrue(reply.bodyText().contains("Thanks, we are on it"));
    assertEquals("Bearer " + TOKEN, reply.header("authorization"));

    // The token is used: the next one is a push, through the client's idempotent send.
    SendResponse second =
        client.send(SendRequest.newBuilder().setChannelId(channel.getId()).setConversation(user(user))
            .addMessages(text("One more thing")).build());
    assertEquals(Route.ROUTE_PUSH, second.getRoute());
    assertFalse(second.getDelivery().getIdempotencyKey().isEmpty(), "the client set a key");

    // Reply only, no token left: FAILED_PRECONDITION, nothing sent.
    fails(Status.Code.FAILED_PRECONDITION,
        () -> messaging().send(SendRequest.newBuilder().setChannelId(channel.getId())
            .setConversation(user(user)).addMessages(text("x")).setAllowPush(false).build()));
  }

  @Test
  void badMessagesNameTheField() throws Exception {
    StatusRuntimeException e =
        fails(Status.Code.INVALID_ARGUMENT,
            () -> messaging().push(PushRequest.newBuilder().setChannelId(channel.getId())
                .setTo(user(newUser())).addMessages(text("")).build()));
    com.google.rpc.Status status = StatusProto.fromThrowable(e);
    BadRequest bad = status.getDetails(0).unpack(BadRequest.class);
    assertEquals("messages[0].text.text", bad.getFieldViolations(0).getField());

    // LINE's own 400 details come back as BadRequest, with ErrorInfo naming the delivery.
    line.script("/v2/bot/message/push", 400,
        "{\"message\":\"The request body has 1 error(s)\",\"details\":[{\"message\":\"May not be empty\",\"property\":\"messages[0].text\"}]}");
    StatusRuntimeException line400 =
        fails(Status.Code.INVALID_ARGUMENT,
            () -> messaging().push(PushRequest.newBuilder().setChannelId(channel.getId())
                .setTo(user(newUser())).addMessages(text("fine here")).build()));
    assertEquals("May not be empty",
        StatusDetails.fieldViolations(line400).get("messages[0].text"));
    ErrorInfo info = StatusDetails.errorInfo(line400).orElseThrow();
    assertEquals("400", info.getMetadataMap().get("line_status"));
    String deliveryId = info.getMetadataMap().get("delivery_id");
    assertFalse(deliveryId.isEmpty());
    Delivery failed =
        messaging().getDelivery(GetDeliveryRequest.newBuilder().setDeliveryId(deliveryId).build()).getDelivery();
    assertEquals(DeliveryState.DELIVERY_STATE_FAILED, failed.getState());
    assertEquals(400, failed.getError().getHttpStatus());
    assertFalse(LineAdapterClient.retryableSend(line400));
  }

  @Test
  void replyPushMulticastBroadcastAndGetDelivery() {
    String user = newUser();
    String id = "01JAVAREPLY" + UUID.randomUUID().toString().substring(0, 8);
    Webhooks.deliver(service.httpBase(), channel.getId(), Webhooks.SECRET,
        Webhooks.textMessage(id, user, "hi", "rt-" + id));
    Delivery reply =
        client.reply(ReplyRequest.newBuilder().setChannelId(channel.getId()).setReplyToken("rt-" + id)
            .addMessages(text("reply")).build()).getDelivery();
    assertEquals(Route.ROUTE_REPLY, reply.getRoute());
    assertEquals(DeliveryState.DELIVERY_STATE_DELIVERED, reply.getState());
    assertEquals("", reply.getRetryKey(), "replies have no retry key");
    // Used once: again without fallback is refused.
    fails(Status.Code.FAILED_PRECONDITION,
        () -> messaging().reply(ReplyRequest.newBuilder().setChannelId(channel.getId())
            .setReplyToken("rt-" + id).addMessages(text("again")).build()));

    PushResponse push =
        messaging().push(PushRequest.newBuilder().setChannelId(channel.getId()).setTo(user(user))
            .addMessages(text("push")).build());
    Delivery pushed = push.getDelivery();
    assertEquals(DeliveryState.DELIVERY_STATE_DELIVERED, pushed.getState());
    FakeLine.Request pushRequest = line.requestsTo("/v2/bot/message/push").stream()
        .filter(r -> pushed.getRetryKey().equals(r.header("x-line-retry-key"))).findFirst().orElseThrow();
    assertTrue(pushRequest.bodyText().contains(user));

    Delivery multicast =
        messaging().multicast(MulticastRequest.newBuilder().setChannelId(channel.getId())
            .addTo(newUser()).addTo(newUser()).addMessages(text("to both")).build()).getDelivery();
    assertEquals(Route.ROUTE_MULTICAST, multicast.getRoute());
    assertEquals(DeliveryState.DELIVERY_STATE_DELIVERED, multicast.getState());
    assertFalse(line.requestsTo("/v2/bot/message/multicast").isEmpty());

    Delivery broadcast =
        client.broadcast(BroadcastRequest.newBuilder().setChannelId(channel.getId())
            .addMessages(text("to everyone")).build()).getDelivery();
    assertEquals(Route.ROUTE_BROADCAST, broadcast.getRoute());
    assertEquals(DeliveryState.DELIVERY_STATE_DELIVERED, broadcast.getState());

    // A narrowcast to an audience of friends in their twenties: accepted, then LINE's progress
    // followed until it says succeeded.
    line.script("/v2/bot/message/narrowcast",
        FakeLine.Answer.json(202, "{}").withHeader("x-line-request-id", "java-nc-1"));
    line.script("/v2/bot/message/progress/narrowcast", 200,
        "{\"phase\":\"succeeded\",\"successCount\":120,\"failureCount\":0,\"targetCount\":120,"
            + "\"acceptedTime\":\"2026-12-03T10:15:30.121Z\",\"completedTime\":\"2026-12-03T10:16:30.121Z\"}");
    Delivery narrowcast =
        client.narrowcast(NarrowcastRequest.newBuilder().setChannelId(channel.getId())
            .addMessages(text("spring sale"))
            .setRecipient(NarrowcastRecipient.newBuilder().setAudienceGroupId(1234567890123L))
            .setFilter(DemographicFilter.newBuilder()
                .setAge(AgeRange.newBuilder().setMinAge(20).setBelowAge(30)))
            .build()).getDelivery();
    assertEquals(Route.ROUTE_NARROWCAST, narrowcast.getRoute());
    assertEquals("java-nc-1", narrowcast.getNarrowcast().getRequestId());
    assertTrue(line.requestsTo("/v2/bot/message/narrowcast").get(0).bodyText()
        .contains("\"audienceGroupId\":1234567890123"));
    Delivery followed = narrowcast;
    for (int i = 0; i < 100 && followed.getState() != DeliveryState.DELIVERY_STATE_DELIVERED; i++) {
      pause(50);
      followed = messaging().getDelivery(
          GetDeliveryRequest.newBuilder().setDeliveryId(narrowcast.getId()).build()).getDelivery();
    }
    assertEquals(DeliveryState.DELIVERY_STATE_DELIVERED, followed.getState());
    assertEquals(NarrowcastPhase.NARROWCAST_PHASE_SUCCEEDED, followed.getNarrowcast().getPhase());
    assertEquals(120, followed.getNarrowcast().getSuccessCount());

    Delivery read =
        messaging().getDelivery(GetDeliveryRequest.newBuilder().setDeliveryId(pushed.getId()).build()).getDelivery();
    assertEquals(pushed.getId(), read.getId());
    assertEquals(pushed.getRetryKey(), read.getRetryKey());
    fails(Status.Code.NOT_FOUND,
        () -> messaging().getDelivery(GetDeliveryRequest.newBuilder().setDeliveryId("dl_nope").build()));
    fails(Status.Code.INVALID_ARGUMENT,
        () -> messaging().getDelivery(GetDeliveryRequest.getDefaultInstance()));

    // The outbox as an operator sees it: newest first, by chat.
    ListDeliveriesResponse toUser = messaging().listDeliveries(ListDeliveriesRequest.newBuilder()
        .setChannelId(channel.getId()).setConversation(user(user)).build());
    assertEquals(pushed.getId(), toUser.getDeliveries(0).getId(), "the push is the newest to that user");
    fails(Status.Code.INVALID_ARGUMENT,
        () -> messaging().listDeliveries(ListDeliveriesRequest.newBuilder()
            .setChannelId(channel.getId()).setPageSize(1001).build()));
  }

  @Test
  void idempotencyKeyReturnsTheSameDeliveryAndRefusesAnotherRequest() {
    String key = "order-42-" + UUID.randomUUID();
    PushRequest request = PushRequest.newBuilder().setChannelId(channel.getId()).setTo(user(newUser()))
        .addMessages(text("your order shipped")).setIdempotencyKey(key).build();
    Delivery first = messaging().push(request).getDelivery();
    Delivery again = messaging().push(request).getDelivery();
    assertEquals(first.getId(), again.getId());
    assertEquals(1, line.requests(r -> first.getRetryKey().equals(r.header("x-line-retry-key"))).size(),
        "LINE got it once");
    fails(Status.Code.ALREADY_EXISTS,
        () -> messaging().push(request.toBuilder().clearMessages().addMessages(text("other")).build()));
  }

  @Test
  void messageContentComesInChunks() {
    String messageId = "700" + (System.nanoTime() % 1_000_000);
    String id = "01JAVAIMAGE" + messageId;
    Webhooks.deliver(service.httpBase(), channel.getId(), Webhooks.SECRET,
        Webhooks.imageMessage(id, newUser(), messageId));
    line.await(r -> r.path().equals("/v2/bot/message/" + messageId + "/content"), 1, Duration.ofSeconds(10));

    for (boolean preview : new boolean[] {false, true}) {
      Iterator<GetMessageContentResponse> parts =
          messaging().getMessageContent(GetMessageContentRequest.newBuilder().setChannelId(channel.getId())
              .setMessageId(messageId).setPreview(preview).build());
      GetMessageContentResponse first = parts.next();
      assertTrue(first.hasMetadata());
      assertEquals(preview ? "image/png" : "image/jpeg", first.getMetadata().getContentType());
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      int chunks = 0;
      while (parts.hasNext()) {
        GetMessageContentResponse part = parts.next();
        assertTrue(part.getChunk().size() <= 64 * 1024);
        bytes.writeBytes(part.getChunk().toByteArray());
        chunks++;
      }
      assertArrayEquals(preview ? FakeLine.PREVIEW : FakeLine.CONTENT, bytes.toByteArray());
      if (!preview) {
        assertTrue(chunks >= 3, "150 kB in 64 KiB chunks");
        assertEquals(FakeLine.CONTENT.length, first.getMetadata().getSizeBytes());
      }
    }
    // Not media: a text message has none.
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () ->
        messaging().getMessageContent(GetMessageContentRequest.newBuilder().setChannelId(channel.getId())
            .setMessageId("").build()).hasNext());
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
  }

  /** Uploads {@code bytes} in one chunk with the async stub (UploadMedia is a client stream). */
  static MediaInfo upload(String contentType, String fileName, byte[] bytes) throws Exception {
    CompletableFuture<UploadMediaResponse> answer = new CompletableFuture<>();
    StreamObserver<UploadMediaRequest> requests =
        client.messagingAsync().withDeadlineAfter(10, TimeUnit.SECONDS).uploadMedia(new StreamObserver<>() {
          @Override public void onNext(UploadMediaResponse response) { answer.complete(response); }
          @Override public void onError(Throwable t) { answer.completeExceptionally(t); }
          @Override public void onCompleted() {}
        });
    requests.onNext(UploadMediaRequest.newBuilder().setStart(UploadMediaStart.newBuilder()
        .setChannelId(channel.getId()).setContentType(contentType).setFileName(fileName)
        .setSizeBytes(bytes.length)).build());
    requests.onNext(UploadMediaRequest.newBuilder().setChunk(ByteString.copyFrom(bytes)).build());
    requests.onCompleted();
    try {
      return answer.get(10, TimeUnit.SECONDS).getMedia();
    } catch (ExecutionException e) {
      throw (Exception) e.getCause();
    }
  }

  @Test
  void uploadMediaIsServedToLineAndSentAsAFile() throws Exception {
    byte[] pdf = "%PDF-1.4\n%%EOF\n".getBytes(StandardCharsets.US_ASCII);
    MediaInfo media = upload("application/pdf", "quote.pdf", pdf);
    assertEquals(MediaKind.MEDIA_KIND_FILE, media.getKind());
    assertEquals("application/pdf", media.getContentType());
    assertEquals(pdf.length, media.getSizeBytes());
    assertTrue(media.getContentUrl().startsWith(BASE + "/media/"), media.getContentUrl());

    // What LINE fetches, from the HTTP listener.
    HttpResponse<byte[]> served = HttpClient.newHttpClient().send(
        HttpRequest.newBuilder(URI.create(service.httpBase() + media.getContentUrl().substring(BASE.length())))
            .build(),
        HttpResponse.BodyHandlers.ofByteArray());
    assertEquals(200, served.statusCode());
    assertEquals("application/pdf", served.headers().firstValue("content-type").orElse(""));
    assertArrayEquals(pdf, served.body());

    PushResponse pushed = messaging().push(PushRequest.newBuilder().setChannelId(channel.getId())
        .setTo(user(newUser()))
        .addMessages(Message.newBuilder().setFile(FileMessage.newBuilder().setMediaId(media.getMediaId())))
        .build());
    assertEquals(DeliveryState.DELIVERY_STATE_DELIVERED, pushed.getDelivery().getState());

    // Bytes that are not what was declared: INVALID_ARGUMENT naming the field.
    StatusRuntimeException wrong =
        assertThrows(StatusRuntimeException.class, () -> upload("image/png", "x.png", pdf));
    assertEquals(Status.Code.INVALID_ARGUMENT, wrong.getStatus().getCode());
    assertTrue(StatusDetails.fieldViolations(wrong).containsKey("start.content_type"),
        () -> "violations: " + StatusDetails.fieldViolations(wrong));
  }

  @Test
  void profilesGroupsLoadingAndMarkAsRead() {
    String user = newUser();
    GetProfileResponse profile =
        messaging().getProfile(GetProfileRequest.newBuilder().setChannelId(channel.getId()).setUserId(user).build());
    assertEquals("Taro", profile.getDisplayName());
    assertEquals(user, profile.getUserId());
    assertEquals("ja", profile.getLanguage());
    assertTrue(profile.hasFetchTime());

    GetGroupSummaryResponse group =
        messaging().getGroupSummary(GetGroupSummaryRequest.newBuilder().setChannelId(channel.getId()).setGroupId(GROUP).build());
    assertEquals("Shop fans", group.getGroupName());
    assertEquals(GROUP, group.getGroupId());

    GetGroupMemberProfileResponse member =
        messaging().getGroupMemberProfile(GetGroupMemberProfileRequest.newBuilder().setChannelId(channel.getId())
            .setRoomId(ROOM).setUserId(user).build());
    assertEquals("Hanako", member.getDisplayName());
    assertFalse(line.requestsTo("/v2/bot/room/" + ROOM + "/member/" + user).isEmpty());
    fails(Status.Code.INVALID_ARGUMENT,
        () -> messaging().getGroupMemberProfile(GetGroupMemberProfileRequest.newBuilder()
            .setChannelId(channel.getId()).setUserId(user).build()));

    messaging().showLoadingAnimation(ShowLoadingAnimationRequest.newBuilder().setChannelId(channel.getId())
        .setUserId(user).setLoadingSeconds(10).build());
    FakeLine.Request loading = line.requestsTo("/v2/bot/chat/loading/start").get(0);
    assertTrue(loading.bodyText().contains(user) && loading.bodyText().contains("10"), loading.bodyText());
    fails(Status.Code.INVALID_ARGUMENT,
        () -> messaging().showLoadingAnimation(ShowLoadingAnimationRequest.newBuilder()
            .setChannelId(channel.getId()).setUserId(user).setLoadingSeconds(7).build()));

    messaging().markAsRead(MarkAsReadRequest.newBuilder().setChannelId(channel.getId())
        .setMarkAsReadToken("mark-token-1").build());
    assertTrue(line.requestsTo("/v2/bot/chat/markAsRead").get(0).bodyText().contains("mark-token-1"));

    // A canned reply checked by LINE before it is saved; nothing is sent.
    messaging().validateMessages(ValidateMessagesRequest.newBuilder().setChannelId(channel.getId())
        .setRoute(Route.ROUTE_REPLY).addMessages(text("See you at 10:00")).build());
    assertTrue(line.requestsTo("/v2/bot/message/validate/reply").get(0).bodyText().contains("See you at 10:00"));
    fails(Status.Code.INVALID_ARGUMENT,
        () -> messaging().validateMessages(ValidateMessagesRequest.newBuilder()
            .setChannelId(channel.getId()).addMessages(text("no route")).build()));

    String gone = newUser();
    line.script("/v2/bot/profile/" + gone, 404, "{\"message\":\"Not found\"}");
    fails(Status.Code.NOT_FOUND,
        () -> messaging().getProfile(GetProfileRequest.newBuilder().setChannelId(channel.getId()).setUserId(gone).build()));

    // LINE's 429 with Retry-After: RESOURCE_EXHAUSTED with a RetryInfo detail.
    String other = newUser();
    line.script("/v2/bot/profile/" + other,
        FakeLine.Answer.json(429, "{\"message\":\"The API rate limit has been exceeded. Try again later.\"}")
            .withHeader("retry-after", "30"));
    StatusRuntimeException limited =
        fails(Status.Code.RESOURCE_EXHAUSTED,
            () -> messaging().getProfile(GetProfileRequest.newBuilder().setChannelId(channel.getId()).setUserId(other).build()));
    RetryInfo retry = StatusDetails.find(limited, RetryInfo.class).orElseThrow();
    assertEquals(30, retry.getRetryDelay().getSeconds());
    assertEquals(Duration.ofSeconds(30), StatusDetails.retryDelay(limited).orElseThrow());
    assertEquals("429", StatusDetails.errorInfo(limited).orElseThrow().getMetadataMap().get("line_status"));
    // The channel's profile lookups are then held until Retry-After passes (line_rate_limits):
    // the next one is not sent, and says when to try again.
    String held = newUser();
    StatusRuntimeException paced =
        fails(Status.Code.RESOURCE_EXHAUSTED,
            () -> messaging().getProfile(GetProfileRequest.newBuilder().setChannelId(channel.getId()).setUserId(held).build()));
    assertTrue(StatusDetails.retryDelay(paced).isPresent());
    assertTrue(line.requestsTo("/v2/bot/profile/" + held).isEmpty());

  }

  @Test
  void subscribeStreamsTheLogAndAckMovesAConsumer() throws Exception {
    String id = "01JAVASUB" + UUID.randomUUID().toString().substring(0, 8);
    Webhooks.deliver(service.httpBase(), channel.getId(), Webhooks.SECRET,
        Webhooks.textMessage(id, newUser(), "read me back", null));

    // Subscribe through the raw stub: EARLIEST, this channel, message events only.
    Event found = null;
    try (Context.CancellableContext ctx = Context.current().withCancellation()) {
      Iterator<SubscribeResponse> stream = ctx.call(() -> MessagingGrpc.newBlockingStub(client.channel())
          .withDeadlineAfter(10, TimeUnit.SECONDS)
          .subscribe(SubscribeRequest.newBuilder().addChannelIds(channel.getId())
              .addEventTypes(EventType.EVENT_TYPE_MESSAGE)
              .setPosition(StartPosition.START_POSITION_EARLIEST).build()));
      long previous = 0;
      while (found == null && stream.hasNext()) {
        SubscribeResponse r = stream.next();
        if (r.hasEvent()) {
          assertTrue(r.getEvent().getSequence() > previous, "sequences increase");
          previous = r.getEvent().getSequence();
          if (r.getEvent().getWebhookEventId().equals(id)) {
            found = r.getEvent();
          }
        }
      }
      ctx.cancel(null);
    }
    assertTrue(found != null, "the webhook's event came back");
    assertEquals(EventType.EVENT_TYPE_MESSAGE, found.getType());
    assertEquals("read me back", found.getMessage().getMessage().getText().getText());
    assertEquals(ContentStatus.CONTENT_STATUS_UNSPECIFIED, found.getMessage().getMessage().getContentStatus());
    assertTrue(found.getJson().contains("\"read me back\""), "LINE's JSON verbatim");
    assertEquals(channel.getId(), found.getChannelId());

    String consumer = "java-ack-" + UUID.randomUUID().toString().substring(0, 8);
    long sequence = found.getSequence();
    AckResponse ack =
        messaging().ack(AckRequest.newBuilder().setConsumer(consumer).setSequence(sequence).build());
    assertTrue(ack.getCreated());
    assertEquals(sequence, ack.getAckedSequence());
    StatusRuntimeException backwards =
        fails(Status.Code.INVALID_ARGUMENT,
            () -> messaging().ack(AckRequest.newBuilder().setConsumer(consumer).setSequence(sequence - 1).build()));
    assertTrue(StatusDetails.fieldViolations(backwards).get("sequence").contains("already acknowledged"),
        backwards.getStatus().toString());
    fails(Status.Code.INVALID_ARGUMENT,
        () -> messaging().ack(AckRequest.newBuilder().setConsumer("bad name!").setSequence(1).build()));
    fails(Status.Code.OUT_OF_RANGE,
        () -> messaging().subscribe(SubscribeRequest.newBuilder().setAfterSequence(1_000_000_000L).build()).hasNext());
    assertFalse(events(1).isEmpty());
  }

  static void pause(long millis) {
    try {
      Thread.sleep(millis);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }
}
