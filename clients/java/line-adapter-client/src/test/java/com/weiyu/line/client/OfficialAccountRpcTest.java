package com.weiyu.line.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import com.google.rpc.ErrorInfo;
import com.weiyu.line.client.testing.FakeLine;
import com.weiyu.line.client.testing.LineAdapterProcess;
import com.weiyu.line.client.testing.Webhooks;
import com.weiyu.line.v1.AddToAudienceRequest;
import com.weiyu.line.v1.Audience;
import com.weiyu.line.v1.AudienceStatus;
import com.weiyu.line.v1.ClearDefaultRichMenuRequest;
import com.weiyu.line.v1.CreateAudienceRequest;
import com.weiyu.line.v1.CreateChannelRequest;
import com.weiyu.line.v1.CreateRichMenuAliasRequest;
import com.weiyu.line.v1.CreateRichMenuRequest;
import com.weiyu.line.v1.DeleteAudienceRequest;
import com.weiyu.line.v1.DeleteRichMenuAliasRequest;
import com.weiyu.line.v1.DeleteRichMenuRequest;
import com.weiyu.line.v1.GetAudienceRequest;
import com.weiyu.line.v1.GetAudienceResponse;
import com.weiyu.line.v1.GetChatMemberCountRequest;
import com.weiyu.line.v1.GetChatMemberIdsRequest;
import com.weiyu.line.v1.GetChatMemberIdsResponse;
import com.weiyu.line.v1.GetDefaultRichMenuRequest;
import com.weiyu.line.v1.GetFollowerIdsRequest;
import com.weiyu.line.v1.GetFollowerStatsRequest;
import com.weiyu.line.v1.GetFollowerStatsResponse;
import com.weiyu.line.v1.GetFriendsDemographicsRequest;
import com.weiyu.line.v1.GetFriendsDemographicsResponse;
import com.weiyu.line.v1.GetMessageDeliveryStatsRequest;
import com.weiyu.line.v1.GetMessageEventStatsRequest;
import com.weiyu.line.v1.GetMessageEventStatsResponse;
import com.weiyu.line.v1.GetRichMenuBatchProgressRequest;
import com.weiyu.line.v1.GetRichMenuImageRequest;
import com.weiyu.line.v1.GetRichMenuImageResponse;
import com.weiyu.line.v1.GetRichMenuRequest;
import com.weiyu.line.v1.GetRichMenuStatsRequest;
import com.weiyu.line.v1.GetRichMenuStatsResponse;
import com.weiyu.line.v1.GetUnitStatsRequest;
import com.weiyu.line.v1.GetUserRichMenuRequest;
import com.weiyu.line.v1.InsightStatus;
import com.weiyu.line.v1.IssueLinkTokenRequest;
import com.weiyu.line.v1.LeaveChatRequest;
import com.weiyu.line.v1.LinkRichMenuRequest;
import com.weiyu.line.v1.ListAggregationUnitsRequest;
import com.weiyu.line.v1.ListAggregationUnitsResponse;
import com.weiyu.line.v1.ListAudiencesRequest;
import com.weiyu.line.v1.ListAudiencesResponse;
import com.weiyu.line.v1.ListRichMenuAliasesRequest;
import com.weiyu.line.v1.ListRichMenusRequest;
import com.weiyu.line.v1.OfficialAccountGrpc;
import com.weiyu.line.v1.PublishRichMenuRequest;
import com.weiyu.line.v1.PublishRichMenuResponse;
import com.weiyu.line.v1.RichMenu;
import com.weiyu.line.v1.RichMenuAction;
import com.weiyu.line.v1.RichMenuArea;
import com.weiyu.line.v1.RichMenuBatchOperation;
import com.weiyu.line.v1.RichMenuBatchPhase;
import com.weiyu.line.v1.RichMenuBatchUnlinkAll;
import com.weiyu.line.v1.RichMenuBounds;
import com.weiyu.line.v1.RichMenuImageTarget;
import com.weiyu.line.v1.RichMenuPostbackAction;
import com.weiyu.line.v1.RichMenuSize;
import com.weiyu.line.v1.SetDefaultRichMenuRequest;
import com.weiyu.line.v1.SetRichMenuImageRequest;
import com.weiyu.line.v1.SetRichMenuImageResponse;
import com.weiyu.line.v1.StartRichMenuBatchRequest;
import com.weiyu.line.v1.UnlinkRichMenuRequest;
import com.weiyu.line.v1.UpdateRichMenuAliasRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.StreamObserver;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every OfficialAccount RPC through the generated stubs, against the real binary and LINE's
 * stand-in (answers scripted per path): rich menus with their image both ways, the default,
 * links, aliases, batches, PublishRichMenu and its undoing, chats, followers and insight.
 */
class OfficialAccountRpcTest {

  static final String TOKEN = "lLtOkEn+AbCdEfGhIjKlMnOpQrStUvWxYz0123456789/ab=";
  static final String MENU = "richmenu-88c05ef6921ae53f8b58a25f3a65faf7";
  static final String USER = "U4af4980629abcdef0123456789abcdef";
  static final String GROUP = "Ca56f94637c0123456789abcdef012345";
  static final String MENU_JSON =
      "{\"richMenuId\":\"" + MENU + "\",\"size\":{\"width\":2500,\"height\":843},"
          + "\"selected\":false,\"name\":\"spring\",\"chatBarText\":\"Menu\",\"areas\":[{\"bounds\":"
          + "{\"x\":0,\"y\":0,\"width\":2500,\"height\":843},\"action\":{\"type\":\"postback\","
          + "\"data\":\"action=coupons\"}}]}";

  static FakeLine line;
  static LineAdapterProcess service;
  static LineAdapterClient client;
  static String channelId;

  @BeforeAll
  static void start() {
    line = FakeLine.start();
    service = LineAdapterProcess.builder().line(line).start();
    client = LineAdapterClient.builder().address(service.grpcTarget()).build();
    channelId =
        client
            .admin()
            .createChannel(
                CreateChannelRequest.newBuilder()
                    .setDisplayName("Shop")
                    .setLineChannelId("3000000001")
                    .setChannelSecret(Webhooks.SECRET)
                    .setChannelAccessToken(TOKEN)
                    .build())
            .getChannel()
            .getId();
  }

  @AfterAll
  static void stop() {
    client.close();
    service.close();
    line.close();
  }

  static OfficialAccountGrpc.OfficialAccountBlockingStub account() {
    return client.officialAccount();
  }

  static RichMenu menu() {
    return RichMenu.newBuilder()
        .setSize(RichMenuSize.newBuilder().setWidth(2500).setHeight(843))
        .setName("spring")
        .setChatBarText("Menu")
        .addAreas(
            RichMenuArea.newBuilder()
                .setBounds(RichMenuBounds.newBuilder().setWidth(2500).setHeight(843))
                .setAction(
                    RichMenuAction.newBuilder()
                        .setPostback(RichMenuPostbackAction.newBuilder().setData("action=coupons"))))
        .build();
  }

  static byte[] png(int width, int height) {
    try {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      ImageIO.write(new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB), "png", out);
      return out.toByteArray();
    } catch (IOException e) {
      throw new AssertionError(e);
    }
  }

  static void ok(String path) {
    line.script(path, 200, "{}");
  }

  @Test
  void richMenusFromCreationToDeletion() throws Exception {
    ok("/v2/bot/richmenu/validate");
    line.script("/v2/bot/richmenu", 200, "{\"richMenuId\":\"" + MENU + "\"}");
    String id =
        account()
            .createRichMenu(
                CreateRichMenuRequest.newBuilder().setChannelId(channelId).setRichMenu(menu()).build())
            .getRichMenuId();
    assertEquals(MENU, id);

    line.script("/v2/bot/richmenu/" + MENU, 200, MENU_JSON);
    RichMenu read =
        account()
            .getRichMenu(GetRichMenuRequest.newBuilder().setChannelId(channelId).setRichMenuId(MENU).build())
            .getRichMenu();
    assertEquals("action=coupons", read.getAreas(0).getAction().getPostback().getData());
    line.script("/v2/bot/richmenu/list", 200, "{\"richmenus\":[" + MENU_JSON + "]}");
    assertEquals(
        1,
        account()
            .listRichMenus(ListRichMenusRequest.newBuilder().setChannelId(channelId).build())
            .getRichMenusCount());

    // The image up, in two chunks of a client stream (the menu's size is read from LINE) ...
    byte[] image = png(2500, 843);
    line.script("/v2/bot/richmenu/" + MENU, 200, MENU_JSON);
    ok("/v2/bot/richmenu/" + MENU + "/content");
    CompletableFuture<SetRichMenuImageResponse> uploaded = new CompletableFuture<>();
    StreamObserver<SetRichMenuImageRequest> upload =
        client
            .officialAccountAsync()
            .withDeadlineAfter(10, TimeUnit.SECONDS)
            .setRichMenuImage(
                new StreamObserver<>() {
                  @Override
                  public void onNext(SetRichMenuImageResponse value) {
                    uploaded.complete(value);
                  }

                  @Override
                  public void onError(Throwable t) {
                    uploaded.completeExceptionally(t);
                  }

                  @Override
                  public void onCompleted() {}
                });
    upload.onNext(
        SetRichMenuImageRequest.newBuilder()
            .setTarget(RichMenuImageTarget.newBuilder().setChannelId(channelId).setRichMenuId(MENU))
            .build());
    int half = image.length / 2;
    upload.onNext(SetRichMenuImageRequest.newBuilder().setChunk(ByteString.copyFrom(image, 0, half)).build());
    upload.onNext(
        SetRichMenuImageRequest.newBuilder()
            .setChunk(ByteString.copyFrom(image, half, image.length - half))
            .build());
    upload.onCompleted();
    SetRichMenuImageResponse done = uploaded.get(10, TimeUnit.SECONDS);
    assertEquals("image/png", done.getContentType());
    assertEquals(2500, done.getWidth());
    FakeLine.Request sent = line.requestsTo("/v2/bot/richmenu/" + MENU + "/content").get(0);
    assertEquals("POST", sent.method());
    assertEquals("image/png", sent.header("content-type"));
    assertArrayEquals(image, sent.body());

    // ... and down, as a stream.
    line.script(
        "/v2/bot/richmenu/" + MENU + "/content",
        new FakeLine.Answer(200, Map.of("content-type", "image/png"), image, Duration.ZERO));
    Iterator<GetRichMenuImageResponse> parts =
        account()
            .getRichMenuImage(
                GetRichMenuImageRequest.newBuilder().setChannelId(channelId).setRichMenuId(MENU).build());
    ByteArrayOutputStream downloaded = new ByteArrayOutputStream();
    assertEquals("image/png", parts.next().getMetadata().getContentType());
    parts.forEachRemaining(p -> downloaded.writeBytes(p.getChunk().toByteArray()));
    assertArrayEquals(image, downloaded.toByteArray());

    // The default, links, aliases.
    ok("/v2/bot/user/all/richmenu/" + MENU);
    account()
        .setDefaultRichMenu(
            SetDefaultRichMenuRequest.newBuilder().setChannelId(channelId).setRichMenuId(MENU).build());
    line.script("/v2/bot/user/all/richmenu", 200, "{\"richMenuId\":\"" + MENU + "\"}");
    assertEquals(
        MENU,
        account()
            .getDefaultRichMenu(GetDefaultRichMenuRequest.newBuilder().setChannelId(channelId).build())
            .getRichMenuId());
    ok("/v2/bot/user/all/richmenu");
    account().clearDefaultRichMenu(ClearDefaultRichMenuRequest.newBuilder().setChannelId(channelId).build());
    assertEquals("DELETE", line.requestsTo("/v2/bot/user/all/richmenu").get(1).method());

    ok("/v2/bot/user/" + USER + "/richmenu/" + MENU);
    assertFalse(
        account()
            .linkRichMenu(
                LinkRichMenuRequest.newBuilder()
                    .setChannelId(channelId)
                    .setRichMenuId(MENU)
                    .addUserIds(USER)
                    .build())
            .getAsynchronous());
    line.script("/v2/bot/richmenu/bulk/unlink", 202, "{}");
    assertTrue(
        account()
            .unlinkRichMenu(
                UnlinkRichMenuRequest.newBuilder()
                    .setChannelId(channelId)
                    .addUserIds(USER)
                    .addUserIds("U0123456789abcdef0123456789abcdef")
                    .build())
            .getAsynchronous());
    line.script("/v2/bot/user/" + USER + "/richmenu", 200, "{\"richMenuId\":\"" + MENU + "\"}");
    assertEquals(
        MENU,
        account()
            .getUserRichMenu(GetUserRichMenuRequest.newBuilder().setChannelId(channelId).setUserId(USER).build())
            .getRichMenuId());

    ok("/v2/bot/richmenu/alias");
    account()
        .createRichMenuAlias(
            CreateRichMenuAliasRequest.newBuilder()
                .setChannelId(channelId)
                .setRichMenuAliasId("spring")
                .setRichMenuId(MENU)
                .build());
    ok("/v2/bot/richmenu/alias/spring");
    account()
        .updateRichMenuAlias(
            UpdateRichMenuAliasRequest.newBuilder()
                .setChannelId(channelId)
                .setRichMenuAliasId("spring")
                .setRichMenuId(MENU)
                .build());
    line.script(
        "/v2/bot/richmenu/alias/list",
        200,
        "{\"aliases\":[{\"richMenuAliasId\":\"spring\",\"richMenuId\":\"" + MENU + "\"}]}");
    assertEquals(
        "spring",
        account()
            .listRichMenuAliases(ListRichMenuAliasesRequest.newBuilder().setChannelId(channelId).build())
            .getAliases(0)
            .getRichMenuAliasId());
    ok("/v2/bot/richmenu/alias/spring");
    account()
        .deleteRichMenuAlias(
            DeleteRichMenuAliasRequest.newBuilder().setChannelId(channelId).setRichMenuAliasId("spring").build());

    // A batch for every user, and its progress.
    ok("/v2/bot/richmenu/validate/batch");
    line.script(
        "/v2/bot/richmenu/batch",
        FakeLine.Answer.json(202, "{}").withHeader("x-line-request-id", "batch-1"));
    String batch =
        account()
            .startRichMenuBatch(
                StartRichMenuBatchRequest.newBuilder()
                    .setChannelId(channelId)
                    .addOperations(
                        RichMenuBatchOperation.newBuilder().setUnlinkAll(RichMenuBatchUnlinkAll.getDefaultInstance()))
                    .build())
            .getRequestId();
    assertEquals("batch-1", batch);
    line.script(
        "/v2/bot/richmenu/progress/batch",
        200,
        "{\"phase\":\"ongoing\",\"acceptedTime\":\"2026-12-01T10:15:30.121Z\"}");
    assertEquals(
        RichMenuBatchPhase.RICH_MENU_BATCH_PHASE_ONGOING,
        account()
            .getRichMenuBatchProgress(
                GetRichMenuBatchProgressRequest.newBuilder().setChannelId(channelId).setRequestId(batch).build())
            .getPhase());

    ok("/v2/bot/richmenu/" + MENU);
    account().deleteRichMenu(DeleteRichMenuRequest.newBuilder().setChannelId(channelId).setRichMenuId(MENU).build());
    line.script("/v2/bot/richmenu/" + MENU, 404, "{\"message\":\"Not found\"}");
    StatusRuntimeException gone =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                account()
                    .getRichMenu(GetRichMenuRequest.newBuilder().setChannelId(channelId).setRichMenuId(MENU).build()));
    assertEquals(Status.Code.NOT_FOUND, gone.getStatus().getCode());
  }

  static PublishRichMenuRequest publish() {
    return PublishRichMenuRequest.newBuilder()
        .setChannelId(channelId)
        .setRichMenu(menu())
        .setImage(ByteString.copyFrom(png(2500, 843)))
        .setMakeDefault(true)
        .setRichMenuAliasId("main")
        .build();
  }

  @Test
  void publishRichMenuDoesEveryStepAndUndoesAFailedOne() throws Exception {
    String id = "richmenu-0000000000000000000000000000abcd";
    ok("/v2/bot/richmenu/validate");
    line.script("/v2/bot/richmenu", 200, "{\"richMenuId\":\"" + id + "\"}");
    ok("/v2/bot/richmenu/" + id + "/content");
    line.script("/v2/bot/richmenu/alias/main", 404, "{\"message\":\"Not found\"}");
    ok("/v2/bot/richmenu/alias");
    ok("/v2/bot/user/all/richmenu/" + id);
    PublishRichMenuResponse published = account().publishRichMenu(publish());
    assertEquals(id, published.getRichMenuId());
    assertTrue(published.getIsDefault());
    assertEquals("main", published.getRichMenuAliasId());
    assertEquals("", published.getPreviousAliasRichMenuId());

    // The upload fails: the menu is deleted again, and the status says so.
    String second = "richmenu-0000000000000000000000000000abce";
    ok("/v2/bot/richmenu/validate");
    line.script("/v2/bot/richmenu", 200, "{\"richMenuId\":\"" + second + "\"}");
    line.script("/v2/bot/richmenu/" + second + "/content", 400, "{\"message\":\"Invalid image\"}");
    ok("/v2/bot/richmenu/" + second);
    StatusRuntimeException failed =
        assertThrows(StatusRuntimeException.class, () -> account().publishRichMenu(publish()));
    assertEquals(Status.Code.INVALID_ARGUMENT, failed.getStatus().getCode());
    ErrorInfo info = null;
    for (com.google.protobuf.Any detail : StatusProto.fromThrowable(failed).getDetailsList()) {
      if (detail.is(ErrorInfo.class)) {
        info = detail.unpack(ErrorInfo.class);
      }
    }
    assertEquals("PUBLISH_RICH_MENU_STEP_UPLOAD_IMAGE", info.getMetadataOrThrow("publish_step"));
    assertEquals("undone", info.getMetadataOrThrow("rollback"));
    assertEquals(second, info.getMetadataOrThrow("rich_menu_id"));
    List<FakeLine.Request> deletes =
        line.requests(r -> r.method().equals("DELETE") && r.path().equals("/v2/bot/richmenu/" + second));
    assertEquals(1, deletes.size(), "the created menu was deleted");
  }

  @Test
  void chatsFollowersAndInsight() {
    line.script(
        "/v2/bot/group/" + GROUP + "/members/ids",
        200,
        "{\"memberIds\":[\"" + USER + "\"],\"next\":\"jxEWCEEP\"}");
    GetChatMemberIdsResponse members =
        account()
            .getChatMemberIds(GetChatMemberIdsRequest.newBuilder().setChannelId(channelId).setGroupId(GROUP).build());
    assertEquals(List.of(USER), members.getMemberIdsList());
    assertEquals("jxEWCEEP", members.getNextPageToken());
    line.script("/v2/bot/group/" + GROUP + "/members/count", 200, "{\"count\":12}");
    assertEquals(
        12,
        account()
            .getChatMemberCount(
                GetChatMemberCountRequest.newBuilder().setChannelId(channelId).setGroupId(GROUP).build())
            .getCount());
    ok("/v2/bot/group/" + GROUP + "/leave");
    account().leaveChat(LeaveChatRequest.newBuilder().setChannelId(channelId).setGroupId(GROUP).build());
    assertEquals("POST", line.requestsTo("/v2/bot/group/" + GROUP + "/leave").get(0).method());

    line.script("/v2/bot/followers/ids", 200, "{\"userIds\":[\"" + USER + "\"]}");
    assertEquals(
        List.of(USER),
        account()
            .getFollowerIds(GetFollowerIdsRequest.newBuilder().setChannelId(channelId).build())
            .getUserIdsList());
    line.script(
        "/v2/bot/followers/ids",
        403,
        "{\"message\":\"Access to this API is not available for your account\"}");
    StatusRuntimeException unverified =
        assertThrows(
            StatusRuntimeException.class,
            () -> account().getFollowerIds(GetFollowerIdsRequest.newBuilder().setChannelId(channelId).build()));
    assertEquals(Status.Code.FAILED_PRECONDITION, unverified.getStatus().getCode());

    line.script(
        "/v2/bot/insight/followers",
        200,
        "{\"status\":\"ready\",\"followers\":7620,\"targetedReaches\":5848,\"blocks\":237}");
    GetFollowerStatsResponse followers =
        account()
            .getFollowerStats(
                GetFollowerStatsRequest.newBuilder().setChannelId(channelId).setDate("20261130").build());
    assertEquals(InsightStatus.INSIGHT_STATUS_READY, followers.getStatus());
    assertEquals(7620, followers.getFollowers());
    line.script("/v2/bot/insight/followers", 200, "{\"status\":\"unready\"}");
    GetFollowerStatsResponse unready =
        account().getFollowerStats(GetFollowerStatsRequest.newBuilder().setChannelId(channelId).build());
    assertEquals(InsightStatus.INSIGHT_STATUS_UNREADY, unready.getStatus());
    assertFalse(unready.hasFollowers(), "no number until LINE has counted");

    line.script(
        "/v2/bot/insight/demographic",
        200,
        "{\"available\":true,\"genders\":[{\"gender\":\"female\",\"percentage\":52.4}]}");
    GetFriendsDemographicsResponse demographics =
        account().getFriendsDemographics(GetFriendsDemographicsRequest.newBuilder().setChannelId(channelId).build());
    assertEquals("female", demographics.getGenders(0).getValue());

    line.script("/v2/bot/insight/message/delivery", 200, "{\"status\":\"ready\",\"apiPush\":12}");
    assertEquals(
        12,
        account()
            .getMessageDeliveryStats(
                GetMessageDeliveryStatsRequest.newBuilder().setChannelId(channelId).setDate("20261130").build())
            .getApiPush());

    line.script(
        "/v2/bot/insight/message/event",
        200,
        "{\"overview\":{\"requestId\":\"f70dd685\",\"timestamp\":1568214000,\"delivered\":320,"
            + "\"uniqueImpression\":82},\"messages\":[],\"clicks\":[]}");
    GetMessageEventStatsResponse events =
        account()
            .getMessageEventStats(
                GetMessageEventStatsRequest.newBuilder().setChannelId(channelId).setLineRequestId("f70dd685").build());
    assertEquals(InsightStatus.INSIGHT_STATUS_READY, events.getStatus());
    assertEquals(82, events.getOverview().getUniqueImpression());

    line.script(
        "/v2/bot/insight/message/event/aggregation",
        200,
        "{\"overview\":{\"uniqueClick\":30},\"messages\":[],\"clicks\":[]}");
    assertEquals(
        30,
        account()
            .getUnitStats(
                GetUnitStatsRequest.newBuilder()
                    .setChannelId(channelId)
                    .setCustomAggregationUnit("promotion_a")
                    .setFromDate("20261101")
                    .setToDate("20261130")
                    .build())
            .getOverview()
            .getUniqueClick());

    line.script(
        "/v2/bot/insight/richmenu/" + MENU + "/daily",
        200,
        "{\"richMenuId\":\"" + MENU + "\",\"metricsFrom\":\"20261101\",\"metricsTo\":\"20261101\","
            + "\"impression\":{\"metrics\":[{\"date\":\"20261101\",\"count\":300,\"uniqueUsers\":191}]},"
            + "\"clicks\":[]}");
    GetRichMenuStatsResponse menuStats =
        account()
            .getRichMenuStats(
                GetRichMenuStatsRequest.newBuilder()
                    .setChannelId(channelId)
                    .setRichMenuId(MENU)
                    .setFromDate("20261101")
                    .setToDate("20261101")
                    .setDaily(true)
                    .build());
    assertTrue(menuStats.getAvailable());
    assertEquals("20261101", menuStats.getImpressions(0).getDate());
    assertEquals(300, menuStats.getImpressions(0).getCount());

    line.script("/v2/bot/message/aggregation/list", 200, "{\"customAggregationUnits\":[\"promotion_a\"]}");
    line.script("/v2/bot/message/aggregation/info", 200, "{\"numOfCustomAggregationUnits\":22}");
    ListAggregationUnitsResponse units =
        account().listAggregationUnits(ListAggregationUnitsRequest.newBuilder().setChannelId(channelId).build());
    assertEquals(List.of("promotion_a"), units.getCustomAggregationUnitsList());
    assertEquals(22, units.getUnitsUsedThisMonth());
  }

  @Test
  void audiencesAndLinkTokens() {
    line.script(
        "/v2/bot/audienceGroup/upload",
        202,
        "{\"audienceGroupId\":1234567890123,\"createRoute\":\"MESSAGING_API\",\"type\":\"UPLOAD\","
            + "\"description\":\"spring\",\"created\":1613698278,\"permission\":\"READ_WRITE\"}");
    Audience created =
        account()
            .createAudience(
                CreateAudienceRequest.newBuilder()
                    .setChannelId(channelId)
                    .setDescription("spring")
                    .addUserIds(USER)
                    .build())
            .getAudience();
    assertEquals(1234567890123L, created.getAudienceGroupId());
    assertEquals(AudienceStatus.AUDIENCE_STATUS_IN_PROGRESS, created.getStatus());

    line.script("/v2/bot/audienceGroup/upload", 202, "{}");
    account()
        .addToAudience(
            AddToAudienceRequest.newBuilder()
                .setChannelId(channelId)
                .setAudienceGroupId(1234567890123L)
                .addUserIds(USER)
                .build());

    line.script(
        "/v2/bot/audienceGroup/list",
        200,
        "{\"audienceGroups\":[{\"audienceGroupId\":1234567890123,\"type\":\"UPLOAD\",\"description\":"
            + "\"spring\",\"status\":\"READY\",\"audienceCount\":1}],\"hasNextPage\":true,"
            + "\"totalCount\":41,\"readWriteAudienceGroupTotalCount\":41}");
    ListAudiencesResponse page =
        account().listAudiences(ListAudiencesRequest.newBuilder().setChannelId(channelId).build());
    assertEquals(AudienceStatus.AUDIENCE_STATUS_READY, page.getAudiences(0).getStatus());
    assertEquals("2", page.getNextPageToken());

    line.script(
        "/v2/bot/audienceGroup/1234567890123",
        200,
        "{\"audienceGroup\":{\"audienceGroupId\":1234567890123,\"status\":\"READY\",\"audienceCount\":1},"
            + "\"jobs\":[{\"audienceGroupJobId\":9,\"jobStatus\":\"FINISHED\"}]}");
    GetAudienceResponse read =
        account()
            .getAudience(
                GetAudienceRequest.newBuilder().setChannelId(channelId).setAudienceGroupId(1234567890123L).build());
    assertEquals("FINISHED", read.getJobs(0).getJobStatus());

    // LINE's 400 for an audience it does not have is NOT_FOUND.
    line.script(
        "/v2/bot/audienceGroup/42",
        400,
        "{\"message\":\"audience group not found\",\"details\":[{\"message\":\"AUDIENCE_GROUP_NOT_FOUND\"}]}");
    StatusRuntimeException missing =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                account()
                    .deleteAudience(
                        DeleteAudienceRequest.newBuilder().setChannelId(channelId).setAudienceGroupId(42).build()));
    assertEquals(Status.Code.NOT_FOUND, missing.getStatus().getCode());
    line.script("/v2/bot/audienceGroup/1234567890123", 200, "{}");
    account()
        .deleteAudience(
            DeleteAudienceRequest.newBuilder().setChannelId(channelId).setAudienceGroupId(1234567890123L).build());

    line.script("/v2/bot/user/" + USER + "/linkToken", 200, "{\"linkToken\":\"NMZTNuVrPTqlr2IF8Bnymkb7rXfYv5EY\"}");
    assertEquals(
        "NMZTNuVrPTqlr2IF8Bnymkb7rXfYv5EY",
        account()
            .issueLinkToken(IssueLinkTokenRequest.newBuilder().setChannelId(channelId).setUserId(USER).build())
            .getLinkToken());
  }
}
