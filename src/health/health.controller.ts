import { Controller, Get, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckResult, HealthCheckService } from '@nestjs/terminus';
import { Public } from '../auth/public.decorator';
import { ApiProblems } from '../common/problems/problem.dto';
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
  @ApiOperation({
    summary: 'Liveness',
    description: 'The process is up and serving HTTP; asks nothing else. Needs no API key.',
  })
  @ApiOkResponse({
    description: 'The process is alive.',
    schema: {
      type: 'object',
      properties: { status: { type: 'string', enum: ['ok'] } },
      required: ['status'],
    },
  })
  @ApiProblems()
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** The process can serve requests: its database answers. 503 otherwise. */
  @Get('ready')
  @HealthCheck({ swaggerDocumentation: false })
  @ApiOperation({
    summary: 'Readiness',
    description:
      'Ready when the database answers (with its latency); 503 otherwise. For load balancers and orchestrators. Needs no API key.',
  })
  @ApiOkResponse({
    description: 'Ready: the database answers.',
    schema: {
      type: 'object',
      properties: {
        status: { type: 'string', enum: ['ok'] },
        info: { type: 'object', additionalProperties: { type: 'object' } },
        error: { type: 'object', additionalProperties: { type: 'object' } },
        details: { type: 'object', additionalProperties: { type: 'object' } },
      },
      required: ['status', 'info', 'error', 'details'],
    },
  })
  @ApiProblems(503)
  async ready(): Promise<HealthCheckResult> {
    try {
      return await this.health.check([() => this.database.isHealthy('database')]);
    } catch (error) {
      if (!(error instanceof ServiceUnavailableException)) throw error;
      const result = error.getResponse() as HealthCheckResult;
      // Only the names of the failed checks: their reasons are in the log (see DatabaseHealthIndicator).
      const down = Object.keys(result.error ?? {}).map((name) => `${name}: down`);
      throw new ServiceUnavailableException(`Not ready (${down.join('; ') || 'a check failed'}).`);
    }
  }
}
