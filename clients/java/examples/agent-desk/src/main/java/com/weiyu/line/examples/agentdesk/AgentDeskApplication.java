package com.weiyu.line.examples.agentdesk;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;

/**
 * agent-desk: logs every inbound LINE message of the channels line-adapter serves and answers
 * "received". Run line-adapter, then {@code mvn -f examples/agent-desk spring-boot:run} from {@code
 * clients/java} (see the README's "From Java").
 */
@SpringBootApplication
public class AgentDeskApplication {

  public static void main(String[] args) {
    SpringApplication.run(AgentDeskApplication.class, args);
  }
}
