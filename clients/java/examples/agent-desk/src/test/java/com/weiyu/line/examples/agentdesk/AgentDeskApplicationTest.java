package com.weiyu.line.examples.agentdesk;

import static org.assertj.core.api.Assertions.assertThat;

import com.weiyu.line.client.LineAdapterClient;
import com.weiyu.line.client.testing.FakeLine;
import com.weiyu.line.client.testing.LineAdapterProcess;
import com.weiyu.line.client.testing.Webhooks;
import com.weiyu.line.v1.Channel;
import com.weiyu.line.v1.CreateChannelRequest;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.context.TestConfiguration;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.context.annotation.Bean;
import org.springframework.test.annotation.DirtiesContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/** The example as it ships, against the real service: it logs a message and answers "received". */
@SpringBootTest(classes = {AgentDeskApplication.class, AgentDeskApplicationTest.Service.class})
@DirtiesContext(classMode = DirtiesContext.ClassMode.AFTER_CLASS)
@ExtendWith(OutputCaptureExtension.class)
class AgentDeskApplicationTest {

  static FakeLine line;
  static LineAdapterProcess service;
  static Channel channel;

  @DynamicPropertySource
  static void lineAdapter(DynamicPropertyRegistry registry) {
    line = FakeLine.start();
    service = LineAdapterProcess.start(line);
    try (LineAdapterClient client = LineAdapterClient.builder().address(service.grpcTarget()).build()) {
      channel = client.admin().createChannel(CreateChannelRequest.newBuilder().setDisplayName("Desk")
          .setLineChannelId("8000000001").setChannelSecret(Webhooks.SECRET)
          .setChannelAccessToken("token").build()).getChannel();
    }
    registry.add("line-adapter.address", service::grpcTarget);
  }

  /** Stops the service and LINE's stand-in after the context (and its subscription) closed. */
  @TestConfiguration
  static class Service {
    @Bean
    AutoCloseable lineAdapterProcess() {
      return () -> {
        service.close();
        line.close();
      };
    }
  }

  @Test
  void logsTheMessageAndAnswersReceived(CapturedOutput output) {
    Webhooks.deliver(service.httpBase(), channel.getId(), Webhooks.SECRET,
        Webhooks.textMessage("01JDESK000000000000000001", Webhooks.USER, "Hello from LINE", "desk-reply-token"));

    List<FakeLine.Request> replies =
        line.await(r -> r.path().equals("/v2/bot/message/reply"), 1, Duration.ofSeconds(15));
    assertThat(replies.get(0).bodyText()).contains("desk-reply-token").contains("\"received\"");
    long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
    while (!output.getOut().contains("answered: ROUTE_REPLY") && System.nanoTime() < deadline) {
      LineAdapterProcess.sleep(20);
    }
    assertThat(output.getOut())
        .contains(channel.getId() + " " + Webhooks.USER + ": Hello from LINE")
        .contains("answered: ROUTE_REPLY DELIVERY_STATE_DELIVERED");
  }
}
