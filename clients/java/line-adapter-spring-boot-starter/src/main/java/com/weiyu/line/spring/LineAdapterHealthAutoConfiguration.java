package com.weiyu.line.spring;

import com.weiyu.line.client.LineAdapterClient;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.actuate.autoconfigure.health.ConditionalOnEnabledHealthIndicator;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.autoconfigure.condition.ConditionalOnBean;
import org.springframework.boot.autoconfigure.condition.ConditionalOnClass;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.context.annotation.Bean;

/** The {@code lineAdapter} health indicator, when Spring Boot Actuator is present. */
@AutoConfiguration(after = LineAdapterAutoConfiguration.class)
@ConditionalOnClass(
    name = {
      "org.springframework.boot.actuate.health.HealthIndicator",
      "org.springframework.boot.actuate.autoconfigure.health.ConditionalOnEnabledHealthIndicator"
    })
@ConditionalOnBean(LineAdapterClient.class)
@ConditionalOnEnabledHealthIndicator("lineAdapter")
public class LineAdapterHealthAutoConfiguration {

  @Bean
  @ConditionalOnMissingBean(name = "lineAdapterHealthIndicator")
  public LineAdapterHealthIndicator lineAdapterHealthIndicator(
      LineAdapterClient client, ObjectProvider<LineEventSubscriptionLifecycle> subscription) {
    return new LineAdapterHealthIndicator(client, subscription);
  }
}
