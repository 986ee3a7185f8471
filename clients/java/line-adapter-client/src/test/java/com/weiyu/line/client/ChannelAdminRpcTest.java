package com.weiyu.line.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.FieldMask;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.PreconditionFailure;
import com.weiyu.line.client.testing.FakeLine;
import com.weiyu.line.client.testing.LineAdapterProcess;
import com.weiyu.line.client.testing.Webhooks;
import com.weiyu.line.v1.Channel;
import com.weiyu.line.v1.ChannelAdminGrpc;
import com.weiyu.line.v1.CreateChannelRequest;
import com.weiyu.line.v1.DeleteChannelRequest;
import com.weiyu.line.v1.GenerateKeyPairRequest;
import com.weiyu.line.v1.GenerateKeyPairResponse;
import com.weiyu.line.v1.GetBotInfoRequest;
import com.weiyu.line.v1.GetBotInfoResponse;
import com.weiyu.line.v1.GetChannelRequest;
import com.weiyu.line.v1.GetChannelResponse;
import com.weiyu.line.v1.GetQuotaRequest;
import com.weiyu.line.v1.GetQuotaResponse;
import com.weiyu.line.v1.GetTokenStatusRequest;
import com.weiyu.line.v1.GetWebhookUrlRequest;
import com.weiyu.line.v1.GetWebhookUrlResponse;
import com.weiyu.line.v1.ListChannelsRequest;
import com.weiyu.line.v1.ListChannelsResponse;
import com.weiyu.line.v1.RegisterWebhookRequest;
import com.weiyu.line.v1.RegisterWebhookResponse;
import com.weiyu.line.v1.RotateAccessTokenRequest;
import com.weiyu.line.v1.SetKidRequest;
import com.weiyu.line.v1.TokenMode;
import com.weiyu.line.v1.TokenStatus;
import com.weiyu.line.v1.UpdateChannelRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every ChannelAdmin RPC through the generated stub, against the real binary and LINE's
 * stand-in; errors read the Java way ({@link StatusProto#fromThrowable}, {@link BadRequest},
 * {@link ErrorInfo}).
 */
class ChannelAdminRpcTest {

  static final String BASE = "https://line.example.test";
  static final String TOKEN = "lLtOkEn+AbCdEfGhIjKlMnOpQrStUvWxYz0123456789/ab=";
  static final String UNKNOWN_ID = "ch_" + "a".repeat(26);

  static FakeLine line;
  static LineAdapterProcess service;
  static LineAdapterClient client;

  @BeforeAll
  static void start() {
    line = FakeLine.start();
    service =
        LineAdapterProcess.builder()
            .line(line)
            .env("LINE_ADAPTER_PUBLIC_BASE_URL", BASE)
            .start();
    client = LineAdapterClient.builder().address(service.grpcTarget()).build();
  }

  @AfterAll
  static void stop() {
    client.close();
    service.close();
    line.close();
  }

  static ChannelAdminGrpc.ChannelAdminBlockingStub admin() {
    return client.admin();
  }

  static Channel create(String lineChannelId, String token) {
    return admin()
        .createChannel(
            CreateChannelRequest.newBuilder()
                .setDisplayName("Channel " + lineChannelId)
                .setLineChannelId(lineChannelId)
                .setChannelSecret(Webhooks.SECRET)
                .setChannelAccessToken(token)
                .build())
        .getChannel();
  }

  static StatusRuntimeException fails(Status.Code code, Runnable call) {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call::run);
    assertEquals(code, e.getStatus().getCode(), () -> "status: " + e.getStatus());
    return e;
  }

  @Test
  void createChannelStoresSecretsWriteOnlyAndNamesBadFields() throws Exception {
    Channel channel = create("1000000001", TOKEN);
    assertTrue(channel.getId().matches("ch_[0-9a-z]{26}"), channel.getId());
    assertTrue(channel.getHasChannelSecret());
    assertEquals(8, channel.getChannelSecretFingerprint().length());
    assertEquals(TokenMode.TOKEN_MODE_LONG_LIVED, channel.getTokenMode());
    assertTrue(channel.getHasAccessToken());
    assertEquals(BASE + "/webhook/line/" + channel.getId(), channel.getWebhookUrl());
    assertFalse(channel.toString().contains(Webhooks.SECRET), "no secret in the response");

    // INVALID_ARGUMENT with one BadRequest violation per field, read from the trailers.
    StatusRuntimeException e =
        fails(
            Status.Code.INVALID_ARGUMENT,
            () ->
                admin()
                    .createChannel(
                        CreateChannelRequest.newBuilder()
                            .setDisplayName("")
                            .setLineChannelId("12ab")
                            .build()));
    com.google.rpc.Status status = StatusProto.fromThrowable(e);
    assertNotNull(status, "the status carries google.rpc.Status details");
    assertEquals(Status.Code.INVALID_ARGUMENT.value(), status.getCode());
    BadRequest badRequest = status.getDetails(0).unpack(BadRequest.class);
    List<String> fields =
        badRequest.getFieldViolationsList().stream()
            .map(BadRequest.FieldViolation::getField)
            .collect(Collectors.toList());
    assertEquals(List.of("display_name", "line_channel_id", "channel_secret"), fields);
    assertTrue(
        StatusDetails.fieldViolations(e).get("line_channel_id").contains("digits only"),
        () -> StatusDetails.fieldViolations(e).toString());

    // The same LINE channel twice.
    fails(Status.Code.ALREADY_EXISTS, () -> create("1000000001", TOKEN));
  }

  @Test
  void getChannelAndItsWebhookCheck() {
    Channel channel = create("1000000002", TOKEN);
    GetChannelResponse plain =
        admin().getChannel(GetChannelRequest.newBuilder().setChannelId(channel.getId()).build());
    assertEquals(channel, plain.getChannel());
    assertFalse(plain.hasWebhookCheck());

    GetChannelResponse checked =
        admin()
            .getChannel(
                GetChannelRequest.newBuilder()
                    .setChannelId(channel.getId())
                    .setCheckWebhook(true)
                    .build());
    assertTrue(checked.hasWebhookCheck());
    assertEquals(channel.getWebhookUrl(), checked.getWebhookCheck().getExpectedUrl());
    assertTrue(
        line.requestsTo("/v2/bot/channel/webhook/endpoint").stream()
            .anyMatch(r -> r.method().equals("GET")));

    StatusRuntimeException notFound =
        fails(
            Status.Code.NOT_FOUND,
            () -> admin().getChannel(GetChannelRequest.newBuilder().setChannelId(UNKNOWN_ID).build()));
    assertTrue(notFound.getStatus().getDescription().contains(UNKNOWN_ID));
    StatusRuntimeException malformed =
        fails(
            Status.Code.INVALID_ARGUMENT,
            () -> admin().getChannel(GetChannelRequest.newBuilder().setChannelId("nope").build()));
    assertTrue(StatusDetails.fieldViolations(malformed).containsKey("channel_id"));
  }

  @Test
  void listChannelsPageByPage() {
    for (int i = 0; i < 3; i++) {
      create("100000010" + i, TOKEN);
    }
    List<Channel> all = new ArrayList<>();
    String token = "";
    int pages = 0;
    do {
      ListChannelsResponse page =
          admin()
              .listChannels(
                  ListChannelsRequest.newBuilder().setPageSize(2).setPageToken(token).build());
      all.addAll(page.getChannelsList());
      token = page.getNextPageToken();
      pages++;
    } while (!token.isEmpty());
    assertTrue(pages >= 2, "paged");
    assertTrue(all.size() >= 3);
    assertEquals(all.size(), all.stream().map(Channel::getId).distinct().count());

    fails(
        Status.Code.INVALID_ARGUMENT,
        () -> admin().listChannels(ListChannelsRequest.newBuilder().setPageToken("garbage!").build()));
  }

  @Test
  void updateChangesOnlyTheMaskedFieldsAndDeleteRemoves() {
    Channel channel = create("1000000003", TOKEN);
    Channel renamed =
        admin()
            .updateChannel(
                UpdateChannelRequest.newBuilder()
                    .setChannelId(channel.getId())
                    .setDisplayName("Tokyo flagship")
                    .setLineChannelId("9999999999") // not in the mask: unchanged
                    .setUpdateMask(FieldMask.newBuilder().addPaths("display_name"))
                    .build())
            .getChannel();
    assertEquals("Tokyo flagship", renamed.getDisplayName());
    assertEquals("1000000003", renamed.getLineChannelId());

    StatusRuntimeException e =
        fails(
            Status.Code.INVALID_ARGUMENT,
            () ->
                admin()
                    .updateChannel(
                        UpdateChannelRequest.newBuilder().setChannelId(channel.getId()).build()));
    assertTrue(StatusDetails.fieldViolations(e).containsKey("update_mask"), e.getStatus().toString());

    Channel deleted =
        admin()
            .deleteChannel(DeleteChannelRequest.newBuilder().setChannelId(channel.getId()).build())
            .getChannel();
    assertEquals(channel.getId(), deleted.getId());
    fails(
        Status.Code.NOT_FOUND,
        () -> admin().getChannel(GetChannelRequest.newBuilder().setChannelId(channel.getId()).build()));
  }

  @Test
  void webhookUrlAndRegistrationAtLine() {
    Channel channel = create("1000000004", TOKEN);
    GetWebhookUrlResponse url =
        admin().getWebhookUrl(GetWebhookUrlRequest.newBuilder().setChannelId(channel.getId()).build());
    assertEquals(BASE + "/webhook/line/" + channel.getId(), url.getWebhookUrl());
    assertEquals("config", url.getBaseUrlSource());

    RegisterWebhookResponse registered =
        admin()
            .registerWebhook(RegisterWebhookRequest.newBuilder().setChannelId(channel.getId()).build());
    assertEquals(url.getWebhookUrl(), registered.getWebhookUrl());
    assertTrue(registered.getActive());
    assertTrue(registered.getTest().getSuccess());
    assertEquals(200, registered.getTest().getStatusCode());
    assertEquals("OK", registered.getTest().getReason());
    List<FakeLine.Request> put =
        line.requests(r -> r.method().equals("PUT") && r.path().equals("/v2/bot/channel/webhook/endpoint"));
    assertTrue(put.get(put.size() - 1).bodyText().contains(url.getWebhookUrl()));
    assertEquals("Bearer " + TOKEN, put.get(put.size() - 1).header("authorization"));
  }

  @Test
  void keyPairKidAndTokens() {
    // No pasted token: short-lived v2 tokens issued by LINE (the stand-in).
    Channel channel = create("1000000005", "");
    assertEquals(TokenMode.TOKEN_MODE_SHORT_LIVED_V2, channel.getTokenMode());

    GenerateKeyPairResponse pair =
        admin().generateKeyPair(GenerateKeyPairRequest.newBuilder().setChannelId(channel.getId()).build());
    assertTrue(pair.getPublicKeyJwk().contains("\"kty\":\"RSA\""), pair.getPublicKeyJwk());
    assertFalse(pair.getPublicKeyJwk().contains("\"d\""), "no private member");
    assertFalse(pair.getThumbprint().isEmpty());

    Channel withKid =
        admin()
            .setKid(SetKidRequest.newBuilder().setChannelId(channel.getId()).setKid("kid-from-console").build())
            .getChannel();
    assertEquals("kid-from-console", withKid.getKid());
    fails(
        Status.Code.INVALID_ARGUMENT,
        () -> admin().setKid(SetKidRequest.newBuilder().setChannelId(channel.getId()).build()));

    TokenStatus rotated =
        admin()
            .rotateAccessToken(RotateAccessTokenRequest.newBuilder().setChannelId(channel.getId()).build())
            .getStatus();
    assertEquals(TokenMode.TOKEN_MODE_SHORT_LIVED_V2, rotated.getMode());
    assertTrue(rotated.getHasToken());
    assertTrue(rotated.hasExpireTime());
    FakeLine.Request issued = line.requestsTo("/v2/oauth/accessToken").get(0);
    assertEquals("1000000005", issued.formField("client_id"));
    assertEquals("client_credentials", issued.formField("grant_type"));

    TokenStatus status =
        admin()
            .getTokenStatus(GetTokenStatusRequest.newBuilder().setChannelId(channel.getId()).build())
            .getStatus();
    assertEquals(rotated.getTokenFingerprint(), status.getTokenFingerprint());
    assertEquals("", status.getLastRefreshError());

    // A pasted long-lived token is reissued in the console only.
    Channel pasted = create("1000000006", TOKEN);
    StatusRuntimeException e =
        fails(
            Status.Code.FAILED_PRECONDITION,
            () ->
                admin()
                    .rotateAccessToken(
                        RotateAccessTokenRequest.newBuilder().setChannelId(pasted.getId()).build()));
    assertTrue(StatusDetails.find(e, PreconditionFailure.class).isPresent(), e.getStatus().toString());
  }

  @Test
  void botInfoAndLineErrorsAsErrorInfo() {
    Channel channel = create("1000000007", TOKEN);
    GetBotInfoResponse bot =
        admin().getBotInfo(GetBotInfoRequest.newBuilder().setChannelId(channel.getId()).build());
    assertEquals(FakeLine.BOT_USER_ID, bot.getUserId());
    assertEquals("@123abcde", bot.getBasicId());
    assertEquals("Tokyo shop", bot.getDisplayName());
    assertEquals("manual", bot.getMarkAsReadMode());

    line.script("/v2/bot/info", 403, "{\"message\":\"Not allowed to use this API\"}");
    StatusRuntimeException e =
        fails(
            Status.Code.PERMISSION_DENIED,
            () -> admin().getBotInfo(GetBotInfoRequest.newBuilder().setChannelId(channel.getId()).build()));
    ErrorInfo info = StatusDetails.errorInfo(e).orElseThrow();
    assertEquals(StatusDetails.LINE_DOMAIN, info.getDomain());
    assertEquals("403", info.getMetadataMap().get("line_status"));
    assertFalse(info.getMetadataMap().get("line_request_id").isEmpty());
    assertTrue(e.getStatus().getDescription().contains("Not allowed to use this API"));
  }

  @Test
  void quotaAndSentCounts() {
    Channel channel = create("1000000008", TOKEN);
    GetQuotaResponse quota =
        admin().getQuota(GetQuotaRequest.newBuilder().setChannelId(channel.getId()).setDate("20261130").build());
    assertTrue(quota.getLimited());
    assertEquals(1000, quota.getMonthlyLimit());
    assertEquals(250, quota.getTotalUsage());
    assertEquals(750, quota.getRemaining());
    assertEquals("20261130", quota.getSentDate());
    assertEquals("ready", quota.getReplySent().getStatus());
    assertEquals(15, quota.getReplySent().getSuccess());
    assertEquals(14, quota.getPushSent().getSuccess());
    assertTrue(
        line.requests(r -> r.path().equals("/v2/bot/message/delivery/push"))
            .stream()
            .anyMatch(r -> "date=20261130".equals(r.query())));

    StatusRuntimeException e =
        fails(
            Status.Code.INVALID_ARGUMENT,
            () -> admin().getQuota(GetQuotaRequest.newBuilder().setChannelId(channel.getId()).setDate("20261301").build()));
    assertTrue(StatusDetails.fieldViolations(e).containsKey("date"));
  }
}
