package com.weiyu.line.spring;

import com.weiyu.line.client.LineAdapterClient;
import com.weiyu.line.client.testing.FakeLine;
import com.weiyu.line.client.testing.LineAdapterProcess;
import com.weiyu.line.client.testing.Webhooks;
import com.weiyu.line.v1.Channel;
import com.weiyu.line.v1.CreateChannelRequest;

/**
 * The real service and LINE's stand-in for a Spring test: started on first use, closed as a bean
 * of the test's context (after the context stopped the subscription).
 */
final class Harness implements AutoCloseable {

  final FakeLine line;
  final LineAdapterProcess service;
  final Channel channel;

  Harness(String lineChannelId) {
    line = FakeLine.start();
    service = LineAdapterProcess.start(line);
    try (LineAdapterClient client = LineAdapterClient.builder().address(service.grpcTarget()).build()) {
      channel = client.admin().createChannel(CreateChannelRequest.newBuilder()
          .setDisplayName("Spring desk").setLineChannelId(lineChannelId)
          .setChannelSecret(Webhooks.SECRET).setChannelAccessToken("token").build()).getChannel();
    }
  }

  @Override
  public void close() {
    service.close();
    line.close();
  }
}
