import { Controller, Get, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckResult, HealthCheckService } from '@nestjs/terminus';
import { Public } from '../auth/public.decorator';
import { ApiProblems } from '../common/problem.dto';
import { DatabaseHealthIndicator } from './database.health';

@ApiTags('health')
@Public()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly database: DatabaseHealthIndicator,
  ) {}

  /** The process is up and serving HTTP. */
  @Get('live')
  @ApiOkResponse({ description: 'The process is alive.', schema: { example: { status: 'ok' } } })
  @ApiProblems()
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** The process can serve requests: its database answers. 503 otherwise. */
  @Get('ready')
  @HealthCheck({ swaggerDocumentation: false })
  @ApiOkResponse({
    description: 'Ready: the database answers.',
    schema: { example: { status: 'ok', info: { database: { status: 'up' } } } },
  })
  @ApiProblems(503)
  async ready(): Promise<HealthCheckResult> {
    try {
      return await this.health.check([() => this.database.isHealthy('database')]);
    } catch (error) {
      if (!(error instanceof ServiceUnavailableException)) throw error;
      const result = error.getResponse() as HealthCheckResult;
      const down = Object.entries(result.error ?? {}).map(
        ([name, check]) => `${name}: ${String((check as { message?: string }).message ?? 'down')}`,
      );
      throw new ServiceUnavailableException(`Not ready (${down.join('; ') || 'a check failed'}).`);
    }
  }
}
